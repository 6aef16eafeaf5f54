"""The data path: the engine that forwards frames through the northd tables, and its traces."""
