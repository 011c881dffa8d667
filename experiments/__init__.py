"""Reproductions of the APEM paper's experiments (§4) on the data this project has.

One entry point, ``python -m experiments run NAME --preset {smoke,small,medium,full} --out DIR``,
for NAME in ``models`` (Table 3), ``ablations`` (Table 4), ``selector`` (Figures 5 and 7a)
and ``efficiency`` (Figure 8); ``python -m experiments render`` writes ``docs/results.md``
from the JSON files the runs left in DIR.
"""
