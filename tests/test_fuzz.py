"""Property tests: the recipe parser and the CLI never fail with anything but a clear error.

CI runs the fast profile. For a long run: `HYPOTHESIS_PROFILE=long python -m pytest tests/test_fuzz.py`
(1,000+ examples per test).
"""

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgecompress import recipe
from edgecompress.cli import main
from edgecompress.recipe import RecipeError

settings.register_profile("ci", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture])
settings.register_profile("long", max_examples=1500, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

scalars = st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False),
                    st.booleans(), st.text(max_size=12), st.lists(st.integers(-3, 9), max_size=3))
keys = st.sampled_from(sorted({k for schema in recipe.STEPS.values() for k in schema.params} | {"kind", "x"}))
kinds = st.sampled_from(sorted(recipe.STEPS) + ["bogus"])


def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(v, list):
        return "[" + ", ".join(map(_toml_value, v)) + "]"
    if isinstance(v, float):
        return repr(v) if "e" in repr(v) or "." in repr(v) else repr(v) + ".0"
    return str(v)


@st.composite
def recipes(draw):
    lines = []
    for _ in range(draw(st.integers(0, 4))):
        lines.append("[[step]]")
        lines.append(f'kind = "{draw(kinds)}"')
        for key, value in draw(st.dictionaries(keys.filter(lambda k: k != "kind"), scalars, max_size=4)).items():
            lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines)


@given(recipes())
def test_recipe_parser_accepts_or_explains(text):
    try:
        parsed = recipe.parse(text)
    except RecipeError as err:
        message = str(err)
        assert "\n" not in message and ("step" in message or "recipe" in message or "`" in message)
    else:
        assert parsed.steps and all(s.kind in recipe.STEPS for s in parsed.steps)


@given(st.text(max_size=300))
def test_recipe_parser_on_arbitrary_text(text):
    try:
        recipe.parse(text)
    except RecipeError:
        pass


# demo and bench would do real work on good input, so the fuzzer drives compress and report.
ARGS = st.lists(st.one_of(st.sampled_from(["compress", "report", "--recipe", "--data",
                                           "-o", "--epochs", "--families", "--overwrite", "--quick",
                                           "mnist5k", "-1", "0", "nope.keras", "x.toml"]),
                          st.text(min_size=1, max_size=8)), max_size=7)


@given(ARGS)
@pytest.mark.parametrize("dummy", [0])
def test_cli_arguments_never_crash(tmp_path_factory, dummy, argv):
    cwd = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("fuzz"))
    try:
        code = main(argv)
    finally:
        os.chdir(cwd)
    assert code in (0, 1, 2)
