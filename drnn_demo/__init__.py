"""drnn_demo: delayed, stacked, LRN, SRU and asRNN recurrent networks, and the lab around them."""

__version__ = "0.1.0"
