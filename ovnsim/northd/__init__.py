"""What ovn-northd derives from the NB model: the pipeline stages and the per-datapath lookup tables."""
