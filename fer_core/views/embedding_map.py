"""The embedding map: every image placed in two dimensions by UMAP over a feature space (the audit's shape
descriptors, or a finished run's penultimate layer; `fer_core.training.features`), coloured by emotion, usage,
a Review flag or the suspected mislabels.

UMAP (umap-learn) rather than t-SNE: on FER-2013's 35,887 shape descriptors on 2 cores it used 55 s of CPU where
openTSNE used 83 s, and it keeps more of the global layout than t-SNE. The projection is seeded (the same map
every time, on one thread) and takes about 90 s, so it is computed once per data fingerprint, feature space and
settings and cached in the workspace's cache folder (`map-<fingerprint>-v<version>-<key>.npz`: the coordinates,
the fingerprint, the space and the digest of the coordinates, so a damaged file is rebuilt, never trusted); after
that the map is a file read. Colours and flags come from the curated table, so they follow the edits at no cost.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fer_core.dataset.loading import Dataset
from fer_core.files import write_atomically
from fer_core.labels import EMOTIONS, USAGES
from fer_core.training.features import FeatureSpace, feature_matrix
from fer_core.views.audit_table import flag_names
from fer_core.workspace import cache_dir

MAP_VERSION = 1
COLOURINGS_FIXED = ("emotion", "usage")
SUSPECTED = "suspected mislabel"  # the model's doubts still to decide (fer_core.mislabels.review.review_queue)
# Tableau 10, one colour per emotion in FER-2013's order (a further class takes the next one).
EMOTION_COLOURS = ("#E45756", "#72B7B2", "#B279A2", "#F2CF5B", "#4C78A8", "#F58518", "#9D9DA6",
                   "#54A24B", "#FF9DA6", "#9D755D")
USAGE_COLOURS = {"Training": "#4C78A8", "PublicTest": "#F58518", "PrivateTest": "#54A24B"}
FLAGGED_COLOUR, UNFLAGGED_COLOUR = "#E45756", "#C8C8C8"
# Seconds the build takes on 2 cores (benchmarks/bench_map.py: 88 s for FER-2013's descriptors): UMAP's
# compilation on first use in a process, then per image; a run's features not yet cached add one pass of its model
# (47 s in all for a tiny cnn's; a larger model takes minutes, so this errs long).
FIXED_SECONDS, SECONDS_PER_IMAGE, RUN_FEATURES_SECONDS_PER_IMAGE = 10.0, 0.0022, 0.003


@dataclass(frozen=True)
class MapConfig:
    """UMAP's settings: `neighbors` sets how local the layout is, `min_distance` how tightly points pack."""

    neighbors: int = 15
    min_distance: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.neighbors < 2:
            raise ValueError(f"map neighbors {self.neighbors} must be at least 2")
        if not 0.0 <= self.min_distance <= 1.0:
            raise ValueError(f"map min_distance {self.min_distance} must be between 0 and 1")


def map_cache_path(dataset: Dataset, space_name: str, config: MapConfig = MapConfig(), workspace=None,
                   create: bool = True) -> Path:
    """The map's cache file for this data, feature space (`descriptors` or `run:<run_id>`) and settings."""
    key = hashlib.sha256(repr((space_name, config)).encode()).hexdigest()[:12]
    return cache_dir(workspace, create=create) / f"map-{dataset.fingerprint}-v{MAP_VERSION}-{key}.npz"


def project_features(features: np.ndarray, config: MapConfig = MapConfig()) -> np.ndarray:
    """N×2 float32 coordinates: UMAP of the rows, seeded; a handful of rows (too few for UMAP's neighbour graph)
    get their two principal components instead."""
    features = np.asarray(features, dtype=np.float32)
    if len(features) < config.neighbors + 2:
        return _principal_components(features)
    import umap  # imported here: loading it compiles code and takes seconds

    with warnings.catch_warnings():  # a seeded UMAP warns that it runs on one thread: that is the point
        warnings.simplefilter("ignore")
        projector = umap.UMAP(n_neighbors=config.neighbors, min_dist=config.min_distance, n_components=2,
                              random_state=config.seed)
        coordinates = projector.fit_transform(features)
    return np.ascontiguousarray(coordinates, dtype=np.float32)


def _principal_components(features: np.ndarray) -> np.ndarray:
    coordinates = np.zeros((len(features), 2), np.float32)
    if len(features) < 2:
        return coordinates
    centred = features.astype(np.float64) - features.mean(axis=0)
    left, singular, _ = np.linalg.svd(centred, full_matrices=False)
    components = min(2, left.shape[1])
    coordinates[:, :components] = left[:, :components] * singular[:components]
    return coordinates


def _digest(coordinates: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(coordinates, dtype=np.float32).tobytes()).hexdigest()


def write_cached_map(path: Path, dataset: Dataset, space_name: str, coordinates: np.ndarray) -> None:
    """One .npz (no pickles): the coordinates, the data fingerprint, the space and the coordinates' digest."""
    buffer = io.BytesIO()
    np.savez(buffer, coordinates=coordinates, fingerprint=np.array(dataset.fingerprint), space=np.array(space_name),
             digest=np.array(_digest(coordinates)))
    write_atomically(path, lambda handle: handle.write(buffer.getvalue()))


def read_cached_map(path: Path, dataset: Dataset, space_name: str) -> np.ndarray | None:
    """The cached coordinates when the file is whole and of this data and space; None otherwise (rebuild)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            coordinates = stored["coordinates"]
            fingerprint, space, digest = str(stored["fingerprint"]), str(stored["space"]), str(stored["digest"])
    except Exception:  # truncated, planted or of another format: only costs a rebuild
        return None
    if (fingerprint != dataset.fingerprint or space != space_name or coordinates.shape != (len(dataset), 2)
            or coordinates.dtype != np.float32 or digest != _digest(coordinates)):
        return None
    return coordinates


def cached_map(dataset: Dataset, space_name: str, config: MapConfig = MapConfig(), workspace=None) -> np.ndarray | None:
    """The map if it is cached already (a file read), else None; never builds, never creates a folder."""
    return read_cached_map(map_cache_path(dataset, space_name, config, workspace, create=False), dataset, space_name)


def build_map(dataset: Dataset, space: FeatureSpace, config: MapConfig = MapConfig(), workspace=None) -> np.ndarray:
    """The N×2 map of `dataset` in `space`: read from the cache, or projected (about a minute on FER-2013) and
    cached. ValueError (one line) when the space's features cannot be had (a run folder without its model)."""
    path = map_cache_path(dataset, space.name, config, workspace)
    coordinates = read_cached_map(path, dataset, space.name)
    if coordinates is None:
        coordinates = project_features(feature_matrix(space, dataset), config)
        write_cached_map(path, dataset, space.name, coordinates)
    return coordinates


def estimated_build_seconds(images: int, run_features_cached: bool = True) -> int:
    """About how long `build_map` takes on 2 cores, for the "building the map" message."""
    per_image = SECONDS_PER_IMAGE + (0.0 if run_features_cached else RUN_FEATURES_SECONDS_PER_IMAGE)
    return int(round(FIXED_SECONDS + per_image * images))


def colourings() -> tuple[str, ...]:
    """What the map can be coloured by: emotion, usage, each Review flag (`flag_names`), suspected mislabels."""
    return COLOURINGS_FIXED + flag_names() + (SUSPECTED,)


def flags_text(table: pd.DataFrame) -> np.ndarray:
    """Per row, its flags after the edits as one line (`duplicate, leak`), or `none`."""
    text = np.full(len(table), "", dtype=object)
    for name in flag_names():
        column = f"flag:{name}"
        if column in table.columns:
            flagged = table[column].to_numpy(dtype=bool)
            text[flagged] = np.where(text[flagged] == "", name, text[flagged] + ", " + name)
    text[text == ""] = "none"
    return text


def map_frame(table: pd.DataFrame, coordinates: np.ndarray, colouring: str = "emotion",
              show_dropped: bool = False, suspected_ids: Collection[str] = ()) -> pd.DataFrame:
    """One row per plotted image: its dataset `row`, `id`, `x`, `y`, its current `label`, `usage`, `flags`
    (text), `dropped` and `group` (the colour it gets: an emotion, a usage, or `<flag>` / `not <flag>`, where
    the suspected mislabels are `suspected_ids`). Dropped images are left out unless `show_dropped`."""
    if colouring not in colourings():
        raise ValueError(f"unknown map colouring {colouring!r}; expected one of {', '.join(colourings())}")
    if len(coordinates) != len(table):
        raise ValueError(f"the map has {len(coordinates):,} points but the table {len(table):,} rows: rebuild the map")
    frame = pd.DataFrame({"row": np.arange(len(table)), "id": table["id"].to_numpy(), "x": coordinates[:, 0],
                          "y": coordinates[:, 1], "label": table["current_label"].to_numpy(),
                          "usage": table["usage"].to_numpy(), "flags": flags_text(table),
                          "dropped": table["dropped"].to_numpy(dtype=bool)})
    if colouring == "emotion":
        frame["group"] = frame["label"]
    elif colouring == "usage":
        frame["group"] = frame["usage"]
    else:
        flagged = (table["id"].isin(set(suspected_ids)).to_numpy() if colouring == SUSPECTED
                   else table[f"flag:{colouring}"].to_numpy(dtype=bool))
        frame["group"] = np.where(flagged, colouring, f"not {colouring}")
    return frame if show_dropped else frame[~frame["dropped"]].reset_index(drop=True)


def _group_order(frame: pd.DataFrame, colouring: str) -> list[tuple[str, str]]:
    """(group, colour) in drawing order; a flag's images are drawn last, on top of the rest."""
    present = set(frame["group"].unique())
    if colouring == "emotion":
        names = (*EMOTIONS, *sorted(present - set(EMOTIONS)))
        return [(name, EMOTION_COLOURS[index % len(EMOTION_COLOURS)]) for index, name in enumerate(names)
                if name in present]
    if colouring == "usage":
        return [(usage, USAGE_COLOURS[usage]) for usage in USAGES if usage in present]
    return [(name, colour) for name, colour in ((f"not {colouring}", UNFLAGGED_COLOUR), (colouring, FLAGGED_COLOUR))
            if name in present]


def marker_size(points: int) -> int:
    """Points big enough to hover on a small map, small enough not to hide each other on FER-2013's 35,887."""
    return 8 if points <= 1_000 else 5 if points <= 10_000 else 3


def map_figure(frame: pd.DataFrame, colouring: str = "emotion", selected: Collection[str] = ()):
    """A WebGL scatter (one trace per colour, so the legend hides or shows each); every point carries its
    sample id as customdata, so a lasso or box selection gives back ids; hover shows id, label, usage, flags.

    The `selected` ids stand out (the others fade), so a selection kept in the session still shows after a
    rerun has redrawn the chart (another colouring, an edit)."""
    import plotly.graph_objects as go

    chosen = set(selected)
    traces = []
    for group, colour in _group_order(frame, colouring):
        part = frame[frame["group"].to_numpy() == group]
        hover = (part["label"] + " · " + part["usage"] + "<br>flags: " + part["flags"]
                 + np.where(part["dropped"], "<br>DROPPED", ""))
        trace = go.Scattergl(
            x=part["x"].to_numpy(), y=part["y"].to_numpy(), mode="markers", name=f"{group} ({len(part):,})",
            customdata=part["id"].to_numpy(dtype=object), text=hover.to_numpy(dtype=object),
            hovertemplate="%{customdata}<br>%{text}<extra></extra>",
            marker=dict(size=marker_size(len(frame)), color=colour, opacity=0.75))
        if chosen:
            trace.update(selectedpoints=np.flatnonzero(part["id"].isin(chosen).to_numpy()).tolist(),
                         selected=dict(marker=dict(opacity=1.0)), unselected=dict(marker=dict(opacity=0.12)))
        traces.append(trace)
    figure = go.Figure(traces)
    figure.update_layout(height=640, margin=dict(l=10, r=10, t=30, b=10), dragmode="lasso",
                         legend=dict(itemsizing="constant", title_text=colouring),
                         xaxis=dict(showticklabels=False, title=None, zeroline=False),
                         yaxis=dict(showticklabels=False, title=None, zeroline=False))
    return figure


def rows_of_ids(table: pd.DataFrame, sample_ids, rows: np.ndarray | None = None) -> np.ndarray:
    """The rows (of `rows`, or of the whole table) whose id is among `sample_ids`, in table order."""
    rows = np.arange(len(table)) if rows is None else np.asarray(rows, dtype=np.int64)
    keep = table["id"].iloc[rows].isin(set(sample_ids)).to_numpy()
    return rows[keep]


def selected_ids(points: list[dict]) -> list[str]:
    """The sample ids of the points in a chart selection (each point carries its id as customdata), no repeats."""
    return list(dict.fromkeys(point["customdata"] for point in points if isinstance(point.get("customdata"), str)))
