"""MXNet RecordIO as a sink of the pipeline (the framing, header and index are in
:mod:`mxnet_recpack.format`)."""
