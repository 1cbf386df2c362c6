"""The Streamlit glue of FER Audit: the only package that imports streamlit.

session: session keys, navigation, messages, the data-path guard, edit calls from callbacks;
audit_task: the audit in a background thread; gallery: tiles, pager, pick → act forms;
forms: group resolution, leak removal, undo; runs: the Train and Results pages' glue.
"""
