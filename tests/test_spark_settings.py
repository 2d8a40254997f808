"""The `[env.NAME.spark]` table, checked when the profile resolves, and what needs no Spark engine at all."""

from __future__ import annotations

import pandas as pd
import pytest

from dbnd_prefect.errors import ConfigError
from tests.conftest import run_python


def resolve(workdir, table: str):
    from dbnd_prefect.config import current_config, reset_config_cache
    from dbnd_prefect.config.profiles import resolve_profile

    (workdir / "dbnd.toml").write_text('[run]\ndata_root = "data"\n\n[env.dev.spark]\n' + table)
    reset_config_cache()
    return resolve_profile(current_config(), "dev")


@pytest.mark.parametrize("table, expected", [
    ('engine = "locl"\n', "unknown Spark engine env.dev.spark.engine = 'locl' at dbnd.toml:5; did you mean 'local'?"),
    ('engine = "local"\ncorse = 2\n', "unknown key env.dev.spark.corse for the local engine at dbnd.toml:6; "
                                      "did you mean 'cores'?"),
    ('engine = "connect"\nremote = "http://spark:15002"\n', "invalid env.dev.spark.remote at dbnd.toml:6: a Spark "
                                                            "Connect address looks like sc://host:15002"),
    ('engine = "connect"\nremote = "sc://h:1"\nmemory = "2g"\n', "unknown key env.dev.spark.memory for the connect "
                                                                 "engine at dbnd.toml:7"),
    ('cores = 0\n', "invalid env.dev.spark.cores at dbnd.toml:5"),
], ids=["engine", "key", "remote", "key-of-other-engine", "cores"])
def test_a_bad_spark_table_is_one_line_naming_the_key_and_the_closest_name(workdir, table, expected):
    with pytest.raises(ConfigError) as caught:
        resolve(workdir, table)
    assert str(caught.value).startswith(expected), str(caught.value)
    assert "\n" not in str(caught.value)


def test_spark_settings_are_typed_and_tokens_never_shown(workdir):
    from dbnd_prefect.spark.settings import describe_engine, spark_settings

    resolved = resolve(workdir, 'engine = "local"\ncores = 2\nmemory = "2g"\n'
                                'conf = { "spark.sql.shuffle.partitions" = 4 }\n')
    settings = resolved.plugin_setting("spark")
    assert (settings.engine, settings.cores, settings.memory) == ("local", 2, "2g")
    assert settings.conf == {"spark.sql.shuffle.partitions": 4}
    connect = spark_settings("prod", {"engine": "connect", "remote": "sc://spark:15002/;token=s3cr3t;user_id=me"})
    shown = describe_engine("prod", connect)
    assert "s3cr3t" not in shown and "token=***" in shown and shown.startswith("Spark engine 'connect' (sc://spark")


def test_spark_support_imports_no_pyspark_until_a_spark_value_is_used():
    code = ("import sys, dbnd_prefect, dbnd_prefect.spark, dbnd_prefect.spark.settings\n"
            "from dbnd_prefect.targets.formats import get_format, default_format_for\n"
            "assert get_format('orc').can_save('pyspark.DataFrame')\n"
            "assert default_format_for('pyspark.DataFrame') == 'parquet'\n"
            "print('pyspark' in sys.modules)")
    proc = run_python("-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_orc_files_round_trip_with_pandas(workdir):
    from dbnd_prefect.targets import Target

    frame = pd.DataFrame({"region": ["eu", "us"], "amount": [1.5, 2.0]})
    info = Target(workdir / "sales.orc").save(frame)
    assert info["format"] == "orc"
    pd.testing.assert_frame_equal(Target(workdir / "sales.orc").load(pd.DataFrame), frame)
