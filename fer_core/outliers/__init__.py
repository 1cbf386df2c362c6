"""Images that are not faces: pixel statistics and the box-plot rule, outlier kinds, the face stage (MTCNN).

Imports the ground floor, `dataset` and `duplicates`.
"""
