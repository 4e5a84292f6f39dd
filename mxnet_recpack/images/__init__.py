"""Images: the one encodings table (``encodings``), header probes that need no decoder
(``probe``), OpenCV decode/encode and the RGB/BGR swap (``codec``), and im2rec's preprocessing
(``transform``).

May import ``errors``, ``format`` and OpenCV/numpy. Importing this package costs nothing:
OpenCV is loaded (``opencv.load``) the first time an image is decoded or encoded.
"""
