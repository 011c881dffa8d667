import numpy as np
import pytest

from experiments.tables import (
    TABLE_DENSE,
    TABLE_STEPS,
    delivery_table,
    shop_table,
    table_splits,
)


@pytest.mark.parametrize(
    ("make", "name", "rates"),
    [
        (shop_table, "table-shop", [0.25, 0.10, 0.063]),  # the rates the description names
        (delivery_table, "table-delivery", [0.20, 0.072]),
    ],
)
def test_generated_tables_are_funnels_at_their_rates(make, name, rates) -> None:
    table = make(60_000)  # the size the experiments use
    labels = table[list(TABLE_STEPS[name])].to_numpy()
    assert (np.diff(labels, axis=1) <= 0).all()  # a later step only after the earlier one
    np.testing.assert_allclose(labels.mean(axis=0), rates, rtol=0.1)
    assert make(60_000).equals(table)  # a function of the seed


def test_later_steps_depend_on_other_columns_than_the_first() -> None:
    table = shop_table(40_000)
    clicked = table[table["click"] == 1]

    def spread(frame, column, label):  # range of the label's rate over the column's values
        rates = frame.groupby(column)[label].mean()
        return rates.max() - rates.min()

    assert spread(clicked, "promo", "cart") > 2 * spread(table, "promo", "click")


def test_tables_read_back_as_the_cli_reads_a_csv(tmp_path) -> None:
    splits = table_splits("table-delivery", 5_000, census_path="", cache_dir=str(tmp_path))
    assert splits.schema.steps == TABLE_STEPS["table-delivery"]
    assert (len(splits.train), len(splits.valid), len(splits.test)) == (4_000, 500, 500)
    assert set(TABLE_DENSE["table-delivery"]) <= set(splits.schema.fields)  # bucketed fields
    assert splits.train.oracle is None


def test_census_table_has_a_third_step_inside_the_second(shared_data_dir, tmp_path) -> None:
    path = f"{shared_data_dir}/census-income/census-income.test.gz"
    splits = table_splits("table-census3", None, path, cache_dir=str(tmp_path))
    assert (len(splits.train), len(splits.valid), len(splits.test)) == (79_561, 9_945, 9_946)
    assert splits.schema.num_fields == 37
    assert not {"c18", "c24", "c30", "c39", "c41"} & set(splits.schema.fields)
    np.testing.assert_allclose(splits.train.labels.mean(axis=0), [0.521, 0.059, 0.025], atol=1e-3)
