"""Map: every image placed by how alike it looks (shape descriptors or a run's features), coloured by emotion,
usage or flag; a lasso or box selection opens in Review."""

import streamlit as st

from fer_app import audit_task, session
from fer_app import embedding_map as map_glue
from fer_core.views import embedding_map

session.setup("Map")
report = audit_task.require_audit()
table, _ = audit_task.curation(report)
spaces = map_glue.feature_spaces(report)
with st.sidebar:
    space = map_glue.space_picker(spaces)
    colouring = map_glue.colouring_picker()
    show_dropped = st.checkbox("Show dropped images", key=map_glue.SHOW_DROPPED)

coordinates = map_glue.wait_for_map(report, space)
if coordinates is None:
    st.stop()
frame = embedding_map.map_frame(table, coordinates, colouring, show_dropped=show_dropped,
                                suspected_ids=map_glue.suspected_ids(report, colouring))
st.caption(f"{len(frame):,} images · {space.label} · UMAP: nearby points look alike in that space. "
           "Hover over a point for its id, emotion, usage and flags.")
map_glue.show_map(frame, colouring)
map_glue.selection_panel(report, table)
