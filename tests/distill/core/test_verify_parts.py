"""Multi-part answers: every part of the final answer is read and compared, not only the last box.

Hand-written cases, one group per pattern of issue 13, each with near variants (spacing,
\\left( \\right), \\dfrac, `\\text{and}` / `and` / `,`, `$` wrappers, sets, `\\in`, `\\pm`,
subscripted labels) and wrong answers that must still fail; plus the single-answer readings
that must not change (intervals and thousands separators are never split, an earlier box is
not part of a single answer).
"""

from __future__ import annotations

import pytest

from distill.core.records import Trace
from distill.core.verify import check, extract_answer
from distill.core.verify.parts import reference_shape, split_parts


def verdict(reference: str, final: str, reasoning: str = "Let me work it out."):
    completion = f"<think>\n{reasoning}\n</think>\n\n{final}"
    return check(Trace(problem_id="p", id="p#0", sample_index=0, problem="?", answer=reference, completion=completion))


def passes(reference: str, final: str, **kw) -> bool:
    return verdict(reference, final, **kw).passed


# (reference, final answer section, expected verdict)
SEVERAL_BOXES = [
    ("(3, 1), (7, 4)", r"The pairs are \boxed{(3, 1)} \quad \text{and} \quad \boxed{(7, 4)}.", True),
    ("(3, 1), (7, 4)", r"The pairs are $\boxed{(7,4)}$ and $\boxed{(3,1)}$.", True),  # alternatives: any order
    ("(3, 1), (7, 4)", r"\boxed{\left( 3, 1 \right)}, \boxed{\left(7, 4\right)}", True),
    ("(3,1),(7,4)", "**Final Answer**\n\\[\n\\boxed{(3, 1)} \\text{ and } \\boxed{(7, 4)}\n\\]", True),
    ("(3, 1), (7, 4)", "The solutions are:\n- $\\boxed{(3,1)}$\n- $\\boxed{(7,4)}$", True),
    (r"\text{(3, 1) and (7, 4)}", r"\boxed{(3, 1)}, \boxed{(7, 4)}", True),
    ("(3, 1), (7, 4)", r"\boxed{(3, 1)} \quad \text{and} \quad \boxed{(7, 5)}", False),  # one pair wrong
    ("(3, 1), (7, 4)", r"\boxed{(1, 3)} \quad \text{and} \quad \boxed{(4, 7)}", False),  # a tuple is ordered
    ("(3, 1), (7, 4)", r"Only \boxed{(3, 1)}.", False),  # a solution missing
    ("(3, 1), (7, 4)", r"\boxed{(3, 1)}, \boxed{(7, 4)} and \boxed{(0, 0)}", False),  # an extra solution
]

ONE_VALUE_PER_BOX = [
    (r"\{2,5,11\}", r"\boxed{2},\boxed{5},\boxed{11}", True),
    (r"\{2,5,11\}", r"\boxed{2} and \boxed{5} and \boxed{11}", True),
    ("{2,5,11}", r"\boxed{2},\boxed{5},\boxed{11}", True),  # braces written for a set
    (r"\{2, 5, 11\}", r"$\boxed{11}$, $\boxed{2}$, and $\boxed{5}$", True),
    ("2, 5, 11", r"\boxed{2}, \boxed{5}, \text{ and } \boxed{11}", True),
    (r"x \in \{2, 5, 11\}", r"\boxed{2}, \boxed{5}, \boxed{11}", True),
    (r"\left\{ 2, 5, 11 \right\}", r"\boxed{x = 2}, \boxed{x = 5}, \boxed{x = 11}", True),
    (r"\{2,5,11\}", r"\boxed{\{2, 5, 11\}}", True),
    (r"\{2,5,11\}", r"\boxed{2}, \boxed{5}", False),
    (r"\{2,5,11\}", r"\boxed{2}, \boxed{5}, \boxed{13}", False),
    (r"\{2,5,11\}", r"\boxed{2}, \boxed{5}, \boxed{11}, \boxed{13}", False),
    (r"\{2,5,11\}", r"\boxed{11}", False),
]

LABELLED_PARTS = [
    (r"b_2 = 4, b_{12} = 7", r"\boxed{b_{12} = 7, \quad b_2 = 4}", True),
    (r"b_2 = 4, b_{12} = 7", r"\boxed{b_{2}=4,\ b_{12}=7}", True),
    (r"b_2 = 4, b_{12} = 7", r"\boxed{b_{12} = 4, \quad b_2 = 7}", False),  # the labels are checked
    (r"b_2 = 4, b_{12} = 7", r"\boxed{4, 7}", True),  # labels dropped on both sides: in order
    (r"b_2 = 4, b_{12} = 7", r"\boxed{7, 4}", False),
    (r"b_{2} = 4 \text{ and } b_{12} = 7", r"$b_{12} = \boxed{7}$ and $b_2 = \boxed{4}$", True),
]

LABELLED_TUPLE_ALTERNATIVES = [
    ("(2, 9), (9, 2)", r"\boxed{(m, n) = (2, 9) \quad \text{and} \quad (9, 2)}", True),
    ("(2, 9), (9, 2)", r"\boxed{(m, n) = (2, 9), (9, 2)}", True),
    ("(2, 9), (9, 2)", r"\boxed{\left(m, n\right) = \left(9, 2\right) \text{ or } \left(2, 9\right)}", True),
    ("(2, 9), (9, 2)", r"\boxed{(m, n) = (2, 9)} and \boxed{(m, n) = (9, 2)}", True),
    ("(2, 9), (9, 2)", r"\boxed{(m, n) = (2, 9)}", False),
    ("(2, 9), (9, 2)", r"\boxed{(m, n) = (2, 9) \text{ or } (9, 3)}", False),
]

LABELLED_SCALARS = [
    ("p = 13, q = 4", r"\boxed{p = 13} and \boxed{q = 4}", True),
    ("p = 13, q = 4", r"$\boxed{q = 4}$ and $\boxed{p = 13}$", True),
    ("p=13,\\ q=4", r"\boxed{p = 13}, \boxed{q = 4}", True),
    ("p = 13, q = 4", r"\boxed{13} and \boxed{4}", True),  # unlabelled: read in the reference's order
    ("p = 13, q = 4", r"\boxed{4} and \boxed{13}", False),
    ("p = 13, q = 4", r"\boxed{p = 4} and \boxed{q = 13}", False),
    ("p = 13, q = 4", r"\boxed{(p, q) = (13, 4)}", True),
    ("p = 13, q = 4", r"\boxed{p = 13}", False),
]

ROOTS_AND_EXPRESSIONS = [
    (r"x_{1}=\frac{-1+\sqrt{5}}{2}, \quad x_{2}=\frac{-1-\sqrt{5}}{2}",
     r"\boxed{\dfrac{-1+\sqrt{5}}{2}} \text{ and } \boxed{\dfrac{-1-\sqrt{5}}{2}}", True),
    (r"x_{1}=\frac{-1+\sqrt{5}}{2}, \quad x_{2}=\frac{-1-\sqrt{5}}{2}",
     r"$x_2 = \boxed{\frac{-1-\sqrt5}{2}}$ and $x_1 = \boxed{\frac{-1+\sqrt5}{2}}$", True),
    (r"x_{1}=\frac{-1+\sqrt{5}}{2}, \quad x_{2}=\frac{-1-\sqrt{5}}{2}",
     r"\boxed{\frac{-1-\sqrt{5}}{2}}, \boxed{\frac{-1+\sqrt{5}}{2}}", True),  # roots x_1, x_2: any order
    (r"x_{1}=\frac{-1+\sqrt{5}}{2}, \quad x_{2}=\frac{-1-\sqrt{5}}{2}", r"\boxed{x = \frac{-1 \pm \sqrt{5}}{2}}", True),
    (r"x_{1}=\frac{-1+\sqrt{5}}{2}, \quad x_{2}=\frac{-1-\sqrt{5}}{2}",
     r"\boxed{\frac{-1+\sqrt{5}}{2}} \text{ and } \boxed{\frac{1-\sqrt{5}}{2}}", False),
    (r"f_{1}=x^{2}+2x+1, \quad f_{2}=x^{2}-1",
     "The two functions are\n\n$$f_1 = \\boxed{(x+1)^2}$$\n\nand\n\n$$f_2 = \\boxed{(x-1)(x+1)}$$", True),
    (r"f_{1}=x^{2}+2x+1, \quad f_{2}=x^{2}-1", r"\(f_2 = \boxed{(x-1)(x+1)}\), \(f_1 = \boxed{(x+1)^2}\)", True),
    (r"f_{1}=x^{2}+2x+1, \quad f_{2}=x^{2}-1", r"$f_1 = \boxed{(x-1)(x+1)}$, $f_2 = \boxed{(x+1)^2}$", False),
    (r"f_{1}=x^{2}+2x+1, \quad f_{2}=x^{2}-1", r"$f_1 = \boxed{(x+1)^2}$, $f_2 = \boxed{(x-1)^2}$", False),
]

DOLLAR_SEPARATED_REFERENCES = [
    ("4$ and $6$ and $9", r"\boxed{4}, \boxed{6}, \boxed{9}", True),
    ("4$ and $6$ and $9", r"\boxed{9, 6, 4}", True),
    ("4$ and $6$ and $9", r"\boxed{4 \text{ and } 6}", False),
    ("4$, $6$, $9", r"\boxed{4}\text{, }\boxed{6}\text{, and }\boxed{9}", True),
    ("30,12$ or $8", r"\boxed{8}, \boxed{12}, \boxed{30}", True),
    ("30,12$ or $8", r"\boxed{30, 12, \text{or } 8}", True),
    ("30,12$ or $8", r"\boxed{30} or \boxed{12}", False),
]

NO_BOX = [
    ("30,12$ or $8", "The final answer is $30,12,8$", True),
    ("30,12$ or $8", "The final answer is $30, 12, 8$.", True),
    ("30,12$ or $8", "The final answer is $30, 12$.", False),
    ("4$ and $6$ and $9", "So the possible values are $4$, $6$, and $9$.", True),
    ("4$ and $6$ and $9", "So the possible values are $4$ and $6$.", False),
]

PLUS_MINUS_AND_TUPLES = [
    (r"3 \pm 2\sqrt{2}", r"\boxed{3 + 2\sqrt{2}} \text{ and } \boxed{3 - 2\sqrt{2}}", True),
    (r"3 \pm 2\sqrt{2}", r"\boxed{3 - 2\sqrt2}, \boxed{3 + 2\sqrt2}", True),
    (r"3 \pm 2\sqrt{2}", r"\boxed{3 + 2\sqrt{2}}", False),
    (r"\{1\pm\sqrt{5},-2\}", r"\boxed{-2}, \boxed{1+\sqrt{5}}, \boxed{1-\sqrt{5}}", True),
    (r"\{1\pm\sqrt{5},-2\}", r"\boxed{-2}, \boxed{1+\sqrt{5}}", False),
    # one ordered tuple: its parts in order, however they are written
    ("(2, 9)", r"\boxed{x = 2} and \boxed{y = 9}", True),
    ("(2, 9)", r"\boxed{a=2,\ b=9}", True),
    ("(2, 9)", r"\boxed{9} and \boxed{2}", False),
    ("(2, 9)", r"\boxed{(9, 2)}", False),
    (r"(x, y) = (1, 2)", r"\boxed{y = 2, \ x = 1}", True),
    (r"(x, y) = (1, 2)", r"\boxed{y = 1, \ x = 2}", False),
    (r"\left( 3, \frac{\pi}{2} \right)", r"\boxed{r = 3}, \quad \boxed{\theta = \frac{\pi}{2}}", True),
]

SINGLE_ANSWERS_STAY = [
    ("[1, 3)", r"\boxed{[1, 3)}", True),
    ("[1, 3)", r"\boxed{1} \text{ and } \boxed{3}", False),  # an interval is never split
    ("[1, 3)", r"\boxed{(1, 3)}", False),
    ("(2, \\infty)", r"\boxed{(2, \infty)}", True),
    ("10,000", r"\boxed{10000}", True),
    (r"10,\!000", r"\boxed{10,000}", True),
    ("10000", r"First \boxed{10,000} apples, and the price is \boxed{10,000}.", True),
    ("7", r"An intermediate value \boxed{3}, and the answer \boxed{7}.", True),
    ("3", r"An intermediate value \boxed{3}, and the answer \boxed{7}.", False),  # the last box
    (r"1,\!000 \text{ and } 2,\!000", r"\boxed{1,000} and \boxed{2,000}", True),
    (r"1,\!000 \text{ and } 2,\!000", r"\boxed{1,000} and \boxed{3,000}", False),
    ("2", r"\boxed{x = 2}", True),
]
# Alternatives are sets: a value written twice counts once, on either side; written forms do not matter.
SETS_AND_TUPLES = [
    (r"\{1, 2\}", r"\boxed{\{1, 1, 2\}}", True),
    ("1, 2", r"\boxed{1, 1, 2}", True),
    (r"\{1, 1, 2\}", r"\boxed{\{2, 1\}}", True),
    ("x = 1, 2", r"\boxed{x \in \{2, 1, 1\}}", True),
    ("(1, 2), (3, 4)", r"\boxed{(3, 4), (1, 2), (1, 2)}", True),
    ("(1, 2), (3, 4)", r"\boxed{\{(3, 4), (1, 2)\}}", True),
    ("(2, 3)", r"\boxed{x = 2, y = 3}", True),
    ("x = 2, y = 3", r"\boxed{(2, 3)}", True),
    ("x = 2, y = 3", r"\boxed{(x, y) = (2, 3)}", True),
    ("-1, 2", r"\boxed{x_1 = 2, x_2 = -1}", True),
    (r"\{1, 2\}", r"\boxed{\{1, 1, 3\}}", False),
    (r"\{1, 2\}", r"\boxed{\{1, 2, 3\}}", False),
    ("1, 2", r"\boxed{1, 1}", False),
    ("(1, 2), (3, 4)", r"\boxed{(2, 1), (4, 3), (4, 3)}", False),
    ("(2, 3)", r"\boxed{(2, 3, 3)}", False),  # a tuple is not a set
    ("x = 2, y = 3", r"\boxed{x = 2, y = 3, y = 3}", False),
]


@pytest.mark.parametrize(
    "reference, final, expected",
    SEVERAL_BOXES + ONE_VALUE_PER_BOX + LABELLED_PARTS + LABELLED_TUPLE_ALTERNATIVES + LABELLED_SCALARS
    + ROOTS_AND_EXPRESSIONS + DOLLAR_SEPARATED_REFERENCES + NO_BOX + PLUS_MINUS_AND_TUPLES + SINGLE_ANSWERS_STAY
    + SETS_AND_TUPLES,
)
def test_multi_part_answers(reference, final, expected):
    result = verdict(reference, final)
    assert result.passed is expected, result.reason


def test_boxes_in_the_reasoning_are_not_parts_of_the_final_answer():
    reasoning = r"Try \boxed{(0, 0)} first."
    assert passes("(3, 1), (7, 4)", r"\boxed{(3, 1)} and \boxed{(7, 4)}", reasoning=reasoning)
    assert not passes("(3, 1), (7, 4)", r"Only \boxed{(7, 4)}.", reasoning=r"\boxed{(3, 1)}")


def test_without_a_closing_tag_only_the_last_run_of_boxes_is_the_answer():
    untagged = lambda text: check(Trace(problem_id="p", id="p#0", sample_index=0, problem="?", answer="(3, 1), (7, 4)",  # noqa: E731
                                        completion=text)).passed
    assert untagged(r"Try \boxed{(0, 0)}... no. So \boxed{(3, 1)} and \boxed{(7, 4)}.")
    assert not untagged(r"First \boxed{(3, 1)}, then much later, after more thought: \boxed{(7, 4)}")


def test_an_intermediate_box_before_the_final_parts():
    final = "Step 1 gives \\boxed{6} candidates.\n\nSo the answer is \\boxed{2}, \\boxed{5} and \\boxed{11}."
    assert passes(r"\{2, 5, 11\}", final)


def test_reasons_name_the_parts():
    wrong = verdict(r"\{2,5,11\}", r"\boxed{2}, \boxed{5}, \boxed{13}")
    assert wrong.reason.startswith("answer 2, 5, 13 != reference") and "3 parts" in wrong.reason
    right = verdict("p = 13, q = 4", r"\boxed{q = 4} and \boxed{p = 13}")
    assert right.reason.startswith("answer q = 4, p = 13 = reference") and "by label" in right.reason


def test_extract_answer_reads_every_part_when_the_reference_has_several():
    completion = "<think>t</think>\n\nSo \\boxed{2}, \\boxed{5} and \\boxed{11}."
    assert extract_answer(completion) == "11"  # a single-part reading: the last box
    assert extract_answer(completion, reference="2, 5, 11") == "2, 5, 11"
    assert extract_answer(completion, reference="11") == "11"
    labelled = "<think>t</think>\n\n$f_1 = \\boxed{x+1}$ and $f_2 = \\boxed{x-1}$"
    assert extract_answer(labelled, reference="f_1 = x + 1, f_2 = x - 1") == "f_1 = x+1, f_2 = x-1"


@pytest.mark.parametrize(
    "text, parts",
    [
        ("10,000", ["10,000"]),
        (r"11,\! 111,\! 100", [r"11,\! 111,\! 100"]),
        ("30,12,8", ["30", "12", "8"]),
        ("1,000, 2,000", ["1,000", "2,000"]),
        ("[1, 3), (5, 7]", ["[1, 3)", "(5, 7]"]),
        (r"(0,9) \cup (9,36)", [r"(0,9) \cup (9,36)"]),
        (r"4$ and $6$ or $9", ["4", "6", "9"]),
        (r"a \text{ and } b \quad c; d \text{, or } e", ["a", "b", "c", "d", "e"]),
        (r"\frac{1}{2}, \sqrt{3}", [r"\frac{1}{2}", r"\sqrt{3}"]),
        ("Portland or Ohio", ["Portland", "Ohio"]),
        ("color", ["color"]),  # "or" inside a word
    ],
)
def test_split_parts(text, parts):
    assert split_parts(text) == parts


@pytest.mark.parametrize(
    "reference, count, ordered",
    [
        ("7", None, None), ("[1, 3)", None, None), ("10,000", None, None), (r"(-\infty, 0] \cup [1, \infty)", None, None),
        (r"x \in [-2, 7]", None, None), ("x = 3", None, None),
        ("(3, 1), (7, 4)", 2, False), (r"\{2,5,11\}", 3, False), (r"x \in \{2,5,11\}", 3, False), (r"3 \pm 2\sqrt{2}", 2, False),
        ("p = 13, q = 4", 2, True), ("b_2 = 4, b_{12} = 7", 2, True), ("x_1 = 2, x_2 = 3", 2, False), ("x = 1, x = 2", 2, False),
        ("(2, 9)", 2, True), (r"\left( 3, \frac{\pi}{2} \right)", 2, True), ("30,12$ or $8", 3, False),
    ],
)
def test_reference_shapes(reference, count, ordered):
    shape = reference_shape(reference)
    if count is None:
        assert shape is None
    else:
        assert (len(shape.parts), shape.ordered) == (count, ordered)
