"""FER Audit: find and fix what is wrong with FER-2013, then retrain on the fixed data."""
