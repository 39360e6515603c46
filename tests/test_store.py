"""pipeline.store: a prepared dataset's versions and the CURRENT switch."""

from pipeline import store


def test_versions_are_numbered_listed_in_order_and_skip_unfinished(tmp_path):
    out = tmp_path / "prepared"
    assert store.list_versions(out) == [] and store.next_version_name(out) == "v00001"
    assert store.current_version(out) is None
    for name in ("v00002", "v00010", "v00001"):
        store.version_dir(out, name).mkdir(parents=True)
    store.unfinished_dir(out, "abc123").mkdir()
    (store.versions_dir(out) / "vnotes").mkdir()  # not a version: no number
    assert store.list_versions(out) == ["v00001", "v00002", "v00010"]
    assert store.next_version_name(out) == "v00011"
    assert store.unfinished_dir(out, "abc123").name.startswith(store.UNFINISHED)


def test_switch_makes_a_version_current_in_one_file(tmp_path):
    out = tmp_path / "prepared"
    store.version_dir(out, "v00001").mkdir(parents=True)
    store.version_dir(out, "v00002").mkdir(parents=True)
    assert store.switch_current(out, "v00001") == store.version_dir(out, "v00001")
    assert store.current_version(out) == out / "versions" / "v00001"
    store.switch_current(out, "v00002")
    assert (out / store.CURRENT).read_text() == "v00002\n"
    assert store.current_version(str(out)) == out / "versions" / "v00002"
    assert sorted(p.name for p in out.iterdir()) == [store.CURRENT, store.VERSIONS]
