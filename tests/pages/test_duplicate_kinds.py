"""AppTest: each near group says how its copies match, and the Duplicates page filters groups by that kind."""

import re

from test_pages import open_page, texts


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
