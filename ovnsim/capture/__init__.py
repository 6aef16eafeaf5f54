"""Captures: streaming pcap/pcapng I/O and ``ovnsim replay``."""
