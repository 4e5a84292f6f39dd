"""webdataset: tar shards of samples (see :mod:`.codec`)."""
