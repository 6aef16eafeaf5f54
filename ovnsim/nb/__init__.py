"""The OVN northbound layer: the logical model and its exports (ovn-nbctl show, nbctl commands, graphs)."""
