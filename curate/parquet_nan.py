"""NaN in Parquet float columns, as curate's DuckDB queries read them.

The Parquet format leaves NaN out of a float column's min/max statistics, and DuckDB (since
1.3.1, by default) believes them: ``read_parquet`` of a column holding 0.1, NaN, 0.9 answered
``isnan(x)`` false on every row, ``WHERE x >= 0.95`` skipped the row group holding the NaN (NaN
is DuckDB's largest number) and ``NULLIF(x, 'nan')`` kept it — so a user's ``sql`` step, a view of
the run and a table step each saw a different table than the one stored. Every ``read_parquet``
of curate's therefore says ``can_have_nan = true``: the statistics then bound only the numbers
that are not NaN, at the price of some row-group pruning, which a step reading every row never
used. DuckDB before the option (< 1.3.1) takes nothing here.
"""

from __future__ import annotations

import functools


@functools.cache
def read_option() -> str:
    """``", can_have_nan = true"`` to append to a ``read_parquet(…)`` call's arguments, or ``""``
    where this DuckDB has no such option."""
    import duckdb

    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        con.sql("SELECT * FROM read_parquet('/nonexistent/curate-probe.parquet', can_have_nan = true)").fetchall()
    except duckdb.BinderException:  # "Invalid named parameter": an older DuckDB
        return ""
    except duckdb.Error:  # the file is not there, as expected: the option was accepted
        pass
    finally:
        con.close()
    return ", can_have_nan = true"
