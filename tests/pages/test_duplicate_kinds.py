"""AppTest: each near group says how its copies match, and the Duplicates page filters groups by that kind."""

import re

from test_pages import open_page, texts

from fer_core.duplicates.limits import MAX_NEAR_THRESHOLD


def group_titles(app) -> list[str]:
    return [line for line in texts(app).splitlines() if re.match(r"\*\*?Group \d+|Group \d+", line)]


def test_near_groups_show_their_kind_and_filter_by_it(app):
    app = open_page(app, "pages/1_Duplicates.py")
    every = group_titles(app)
    # make_synthetic: three exact copies, a JPEG re-encoding (near) and a one-pixel shift (shifted)
    assert len(every) == 5
    assert sum(" · exact" in title for title in every) == 3
    assert sum(" · shifted" in title for title in every) == 1
    assert sum(" · near" in title for title in every) == 1
    for kind, expected in (("shifted", 1), ("near", 1), ("exact", 3), ("mirrored", 0)):
        app.multiselect(key="dup_match_kinds").set_value([kind]).run()
        assert not app.exception
        titles = group_titles(app)
        assert len(titles) == expected, (kind, titles)
        assert all(f" · {kind}" in title for title in titles)
        assert f"**{expected:,}** near-duplicate group(s) match" in texts(app)
    app.multiselect(key="dup_match_kinds").set_value(["shifted", "near"]).run()
    assert len(group_titles(app)) == 2


def test_near_mode_choice_shows_the_threshold_only_where_it_applies(app):
    assert "near copies confirmed on pixels" in texts(open_page(app, None))  # the Overview says how they were found
    app = open_page(app, "pages/1_Duplicates.py")
    assert app.radio(key="near_mode_radio").value == "verified"
    assert not [slider for slider in app.slider if slider.key == "threshold_slider"]  # no knob that does nothing
    assert "No threshold to set" in texts(app)
    verified_titles = group_titles(app)

    app.radio(key="near_mode_radio").set_value("hash").run()
    assert not app.exception
    assert app.slider(key="threshold_slider").value == 6
    assert app.slider(key="threshold_slider").max == MAX_NEAR_THRESHOLD  # no setting that runs for minutes
    assert "within 6 bits" in texts(app)
    assert not any(" · shifted" in title for title in group_titles(app))  # pHash pairs have no pixel kind
    app.slider(key="threshold_slider").set_value(0).run()
    assert not app.exception and "within 0 bits" in texts(app)

    app = open_page(app, None)
    assert not app.exception and "near copies: pHash within 0 bits" in texts(app)
    app = open_page(app, "pages/1_Duplicates.py")
    app.radio(key="near_mode_radio").set_value("verified").run()
    assert not app.exception and group_titles(app) == verified_titles
    from fer_app.audit_task import _audit_jobs

    # The slider moved in pHash mode does not start a second verified audit of one source and workspace.
    verified_sources = [(path, signature, space) for path, signature, _, mode, space in _audit_jobs()[0]
                        if mode == "verified"]
    assert len(verified_sources) == len(set(verified_sources))


def test_verified_groups_are_captioned_by_kind_and_similarity(app):
    """Issue 24: in the default (verified) mode the Duplicates page said "N bits from #1" and "up to N bits
    apart", which did not decide the groups; it shows each pair's kind and pixel similarity instead."""
    app = open_page(app, "pages/1_Duplicates.py")
    shown = texts(app)
    assert "bits from #1" not in shown and "bits apart" not in shown
    assert "vs #1: shifted, similarity" in shown and "vs #1: identical pixels" in shown
    assert all(" · similarity " in title for title in group_titles(app))
    app.radio(key="dup_kind").set_value("exact").run()
    assert "bits from #1" not in texts(app) and "vs #1: identical pixels" in texts(app)
    app.radio(key="dup_kind").set_value("near").run()
    app.radio(key="near_mode_radio").set_value("hash").run()
    assert "bits from #1" in texts(app) and all("bits apart" in title for title in group_titles(app))


def test_dropped_members_of_a_group_are_greyed_out(app, monkeypatch):
    """Issue 24: a dropped copy inside a group was marked only by the word DROPPED under it; its picture is
    greyed out too (the live copy stays as it is)."""
    import numpy as np
    import streamlit as st
    from test_pages import button

    from fer_core.curation.edits import read_edits
    from fer_core.dataset.loading import load
    from fer_core.views import image_tiles

    shown = []
    original = st.image
    monkeypatch.setattr(st, "image", lambda image, *args, **kwargs: (shown.append(np.asarray(image)),
                                                                     original(image, *args, **kwargs))[1])
    app = open_page(app, "pages/1_Duplicates.py")
    shifted = next(title for title in group_titles(app) if " · shifted" in title)  # its two members' pixels differ
    number = int(re.search(r"Group (\d+)", shifted).group(1))
    key = f"group_near_{number - 1}"
    app.text_input(key=f"{key}_reason").set_value("keep the first")
    button(app, "Apply", f"{key}_form").click().run()  # default action: keep one, drop the rest
    dropped = [edit.sample_id for edit in read_edits() if edit.action == "drop"]
    assert len(dropped) == 1
    dataset = load(app.session_state["data_path"])
    row = dataset.index_of(dropped[0])
    shown.clear()
    app.run()
    assert not any(np.array_equal(image, image_tiles.upscale(dataset.pixels[row])) for image in shown)
    greyed = image_tiles.upscale(image_tiles.faded(dataset.pixels[row]))
    assert any(np.array_equal(image, greyed) for image in shown)
