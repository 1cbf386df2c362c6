"""Reading a FER dataset: sources at the file level (folders, CSV), decoding, the cached pixel store → `Dataset`.

Imports only the ground floor (labels, files, workspace).
"""
