"""The Neutron layer: tenant model, topology files and builder, and the Neutron -> OVN NB compiler."""
