import pytest

from ansible_collections.l3.calico.plugins.module_utils.calico_selector import SelectorError, matches, parse

LABELS = {"rack": "r1", "zone": "eu", "gpu": "yes"}


@pytest.mark.parametrize(
    "selector, expected",
    [
        ("", True),
        ("all()", True),
        ("rack == 'r1'", True),
        ('rack == "r2"', False),
        ("rack != 'r2'", True),
        ("missing != 'x'", True),
        ("has(gpu)", True),
        ("has(tpu)", False),
        ("!has(tpu)", True),
        ("rack in {'r1', 'r3'}", True),
        ("rack in {}", False),
        ("missing in {'a'}", False),
        ("rack not in {'r2'}", True),
        ("missing not in {'a'}", True),
        ("rack == 'r1' && zone == 'us'", False),
        ("rack == 'r1' || zone == 'us'", True),
        ("!(rack == 'r1' && zone == 'eu')", False),
        ("has(gpu) && (zone == 'us' || rack in {'r1'})", True),
        ("rack == 'r2' || zone == 'us' || has(gpu)", True),
        ("!!has(gpu)", True),
        ("example.com/role == 'x'", False),
    ],
)
def test_selector_semantics(selector, expected):
    assert matches(selector, LABELS) is expected


def test_precedence_and_binds_tighter_than_or():
    # a || b && c  ==  a || (b && c)
    assert matches("has(gpu) || has(x) && has(y)", LABELS) is True
    assert matches("(has(gpu) || has(x)) && has(y)", LABELS) is False


@pytest.mark.parametrize(
    "selector, position, fragment",
    [
        ("rack == r1", 8, "expected a quoted string, found 'r1'"),
        ("rack = 'r1'", 5, "unexpected character '='"),
        ("rack == 'r1", 8, "unterminated string"),
        ("has(rack", 8, "expected ')' after the label name, found the end"),
        ("(rack == 'a'", 12, "expected ')'"),
        ("rack == 'a' &&", 14, "expected a label name"),
        ("rack in {'a' 'b'}", 13, "expected ',' or '}'"),
        ("rack not {'a'}", 9, "expected 'in' after 'not'"),
        ("rack", 4, "expected '==', '!=', 'in', 'not in', 'contains', 'starts with' or 'ends with'"),
        ("rack starts 'r'", 12, "expected 'with' after 'starts'"),
        ("rack ends == 'r'", 10, "expected 'with' after 'ends'"),
        ("rack contains r1", 14, "expected a quoted string"),
        ("global(", 7, "expected ')' after 'global('"),
        ("all(", 4, "expected ')' after 'all('"),
        ("rack == 'a' rack == 'b'", 12, "expected '&&', '||' or the end"),
        ("&& has(x)", 0, "expected a label name"),
    ],
)
def test_syntax_errors_are_precise(selector, position, fragment):
    with pytest.raises(SelectorError) as err:
        parse(selector)
    assert err.value.position == position
    assert fragment in str(err.value)
    assert repr(selector) in str(err.value)


def test_a_selector_nested_too_deep_is_a_named_error_not_a_recursion_error():
    """2,000 levels used to raise RecursionError; 64 are fine, the 65th is refused by name."""
    for selector in ("(" * 2000 + "all()" + ")" * 2000, "!" * 2000 + "has(rack)", "(!" * 1000 + "all()" + ")" * 1000):
        with pytest.raises(SelectorError, match=r"nested more than 64 deep \(parentheses and '!' together\) at position 64"):
            parse(selector)
    assert parse("(" * 64 + "rack == 'r1'" + ")" * 64)({"rack": "r1"})
    assert parse("!" * 63 + "has(rack)")({}) is True


# Calico's string operators and global() (libcalico-go/lib/selector/parser/ast.go: contains, starts with and
# ends with need the label present; GlobalNode evaluates to true).
@pytest.mark.parametrize(
    "selector, expected",
    [
        ("rack contains 'r'", True),
        ("rack contains '1'", True),
        ("rack contains ''", True),
        ("rack contains 'x'", False),
        ("missing contains ''", False),
        ("zone starts with 'e'", True),
        ("zone starts with 'u'", False),
        ("zone startswith 'e' || has(x)", None),
        ("zone ends with 'u'", True),
        ("zone ends   with 'eu'", True),
        ("zone ends with 'e'", False),
        ("missing starts with ''", False),
        ("missing ends with ''", False),
        ("!missing ends with 'x'", True),
        ("global()", True),
        ("global() && rack == 'r1'", True),
        ("has(gpu) && zone starts with 'e' && rack ends with '1'", True),
    ],
)
def test_string_operators_and_global(selector, expected):
    if expected is None:  # one word 'startswith' is not an operator here
        with pytest.raises(SelectorError):
            parse(selector)
        return
    assert matches(selector, LABELS) is expected


def test_uses_global_counts_global_terms():
    from ansible_collections.l3.calico.plugins.module_utils.calico_selector import uses_global

    assert uses_global("global()") == 1
    assert uses_global("all()") == 0
    assert uses_global("has(global)") == 0
    assert uses_global("global() || global()") == 2
    with pytest.raises(SelectorError):
        uses_global("global(")
