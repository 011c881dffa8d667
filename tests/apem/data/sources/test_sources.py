import pytest

from apem.data import load_source


def test_synthetic_source_passes_options():
    splits = load_source("synthetic", n=2000, num_fields=5, num_steps=3, seed=4)
    assert len(splits.train) == 1600 and splits.schema.num_fields == 5
    assert splits.schema.num_steps == 3


def test_table_source(tmp_path, funnel_frame):
    path = str(tmp_path / "log.csv")
    funnel_frame.to_csv(path, index=False)
    splits = load_source(path, labels=["click", "buy"], dense=["x"], cache_dir=str(tmp_path))
    assert splits.schema.fields == ("a", "b", "x")
    with pytest.raises(ValueError, match="needs its label columns"):
        load_source(path)


def test_real_sources(shared_data_dir, tmp_path):
    census = load_source(
        f"census:{shared_data_dir}/census-income/census-income.test.gz", cache_dir=str(tmp_path)
    )
    assert census.schema.steps == ("work", "income")
    aliccp = load_source(
        f"aliccp:{shared_data_dir}/ali-ccp-sample", dense="raw", cache_dir=str(tmp_path)
    )
    assert aliccp.schema.num_dense == 8


def test_tianchi_source_converts_once(raw_dir, tmp_path):
    cache = str(tmp_path / "cache")
    first = load_source(f"tianchi:{raw_dir}", min_count=2, cache_dir=cache)
    assert len(first.test) == 6 and first.schema.num_fields == 18
    again = load_source(f"tianchi:{raw_dir}", min_count=2, cache_dir=cache)
    assert again.metadata["cache"] == first.metadata["cache"]


def test_unknown_source_lists_the_valid_ones():
    with pytest.raises(ValueError, match="valid: synthetic, census:PATH"):
        load_source("criteo:/data")


@pytest.mark.parametrize(
    ("source", "options", "unused"),
    [
        ("synthetic", {"labels": ["click"]}, "labels"),
        ("synthetic", {"dense": ["price"]}, "dense"),
        ("census:any.gz", {"seed": 3}, "seed"),
        ("census-pair:any.gz", {"dense": ["c0"], "seed": 1}, "dense, seed"),
        ("aliccp:dir", {"labels": ["click", "purchase"]}, "labels"),
        ("tianchi:dir", {"dense": ["D1"]}, "dense"),
    ],
)
def test_options_a_source_ignores_are_refused(source, options, unused):
    with pytest.raises(ValueError, match=rf"{source}: {unused} does not apply"):
        load_source(source, **options)


def test_aliccp_dense_mode_given_as_a_one_element_list(shared_data_dir, tmp_path):
    path = f"{shared_data_dir}/ali-ccp-sample"
    raw = load_source(f"aliccp:{path}", dense=["raw"], cache_dir=str(tmp_path))
    assert raw.schema.num_dense == 8
