import numpy as np

from apem.data import load_census_funnel, load_census_pair


def test_census_funnel_follows_the_readme(shared_data_dir, tmp_path):
    path = f"{shared_data_dir}/census-income/census-income.test.gz"
    splits = load_census_funnel(path, cache_dir=str(tmp_path))
    assert (len(splits.train), len(splits.valid), len(splits.test)) == (79_561, 9_945, 9_946)
    assert splits.schema.steps == ("work", "income") and splits.schema.num_fields == 38
    assert not {"c24", "c30", "c39", "c41"} & set(splits.schema.fields)
    assert splits.metadata["dropped_inconsistent"] == 310
    np.testing.assert_allclose(splits.test.labels.mean(axis=0), [0.520, 0.059], atol=5e-4)
    assert (np.diff(splits.train.labels.astype(int), axis=1) <= 0).all()
    # values seen fewer than 3 times in train are OOV: every kept id occurs >= 3 times there
    for f in range(splits.schema.num_fields):
        counts = np.bincount(splits.train.ids[:, f], minlength=splits.schema.vocab_sizes[f])
        assert (counts[1:] >= 3).all()


def test_census_pair(shared_data_dir, tmp_path):
    path = f"{shared_data_dir}/census-income/census-income.test.gz"
    splits = load_census_pair(path, cache_dir=str(tmp_path))
    assert (len(splits.train), len(splits.valid), len(splits.test)) == (79_809, 9_976, 9_977)
    assert splits.schema.steps == ("income", "never_married") and not splits.schema.sequential
    assert splits.schema.num_fields == 39 and "c7" not in splits.schema.fields
    rates = np.concatenate([s.labels for s in (splits.train, splits.valid, splits.test)]).mean(0)
    np.testing.assert_allclose(rates, [6_186 / 99_762, 43_143 / 99_762], rtol=1e-9)
