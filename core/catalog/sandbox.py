"""The Jinja sandbox templates render in, with limits on what one render may cost.

Jinja's immutable sandbox stops attribute tricks, not work: ``range(100000)`` loops
nested three deep, a string doubled forty times with ``s ~ s``, ``"a" * 10**9`` or
``s|replace("a", s)`` each run for minutes or exhaust memory on the gateway's hot path.
So every render here has a budget:

- ``range()`` gives at most ``MAX_RANGE`` numbers;
- all loops of one render together take at most ``MAX_LOOP_STEPS`` steps;
- no value built by ``*``, ``~``, ``+``, ``%``, a filter or a method call may be longer
  than ``MAX_RENDERED_CHARS``, checked before building it where the size is known in
  advance (repetition, widths, joins, replacements) and right after otherwise;
- the rendered text stops at ``MAX_RENDERED_CHARS`` (it is streamed and counted);
- a render stops after ``RENDER_SECONDS``, checked every 256 loop steps and every 32
  output chunks, so even work the other limits allow cannot hold a gateway thread for long.

Each breach raises ``SecurityError`` naming the limit. The checks ride on hooks the
code generator writes into the compiled template (loops and ``~``) and on the sandbox's
own interception of operators and calls; a template without loops pays almost nothing.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any

from jinja2 import StrictUndefined, Template, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

# Large enough for any real prompt (a long contract is ~100k characters); small enough
# that a template cannot make the gateway build a gigabyte string.
MAX_RENDERED_CHARS = 1_000_000
MAX_RANGE = 1_000
MAX_LOOP_STEPS = 100_000
RENDER_SECONDS = 1.0
_MAX_EXPONENT = 64
_CLOCK_EVERY = 256  # loop steps between two looks at the clock (and at the step count)
_OUTPUT_BATCH = 32  # output chunks counted at a time
# A width or precision in a %-format ("%999999999s") builds a string that long.
_FORMAT_WIDTH = re.compile(r"%[-+ #0]*(\d+|\*)?(?:\.(\d+|\*))?")
# ... and in a str.format field: "{:>999999999}"
_BRACE_WIDTH = re.compile(r"\{[^{}]*:[^{}]*?(\d{7,})")


class _Budget:
    """What one render may still spend."""

    __slots__ = ("deadline", "steps_left")

    def __init__(self) -> None:
        self.deadline = time.perf_counter() + RENDER_SECONDS
        self.steps_left = MAX_LOOP_STEPS


class _CurrentBudget(threading.local):
    """The budget of the render running on this thread (a render never changes thread).

    render_limited gives each render its own; templates rendered any other way share one
    budget per thread, so render through render_limited."""

    budget: _Budget | None = None


_current = _CurrentBudget()


def _budget() -> _Budget:
    budget = _current.budget
    if budget is None:
        budget = _current.budget = _Budget()
    return budget


def check_clock() -> None:
    if time.perf_counter() > _budget().deadline:
        raise SecurityError(f"the render took longer than the {RENDER_SECONDS:g} s limit")


def _too_long(size: int, what: str = "the value") -> SecurityError:
    return SecurityError(f"{what} would be {size:,} characters; the limit is {MAX_RENDERED_CHARS:,}")


def _checked(value: Any) -> Any:
    if isinstance(value, str | list | tuple) and len(value) > MAX_RENDERED_CHARS:
        raise _too_long(len(value))
    return value


def _guarded(iterable: Iterable[Any]) -> Iterator[Any]:
    budget = _budget()
    for item in iterable:
        budget.steps_left -= 1
        if not budget.steps_left % _CLOCK_EVERY:
            if budget.steps_left < 0:
                raise SecurityError(
                    f"the loops ran more than {MAX_LOOP_STEPS:,} steps; the limit is {MAX_LOOP_STEPS:,}"
                )
            check_clock()
        yield item


def _range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise SecurityError(f"range() of {len(numbers):,} numbers; the limit is {MAX_RANGE:,}")
    return numbers


def _concat(values: Iterable[Any]) -> str:
    parts = [str(v) for v in values]
    size = sum(map(len, parts))
    if size > MAX_RENDERED_CHARS:
        raise _too_long(size, "the joined text")
    return "".join(parts)


def _format_problem(template: Any) -> str | None:
    if isinstance(template, str):
        for match in _FORMAT_WIDTH.finditer(template):
            for number in match.groups():
                if number == "*" or (number and int(number) > MAX_RENDERED_CHARS):
                    return f"a %-format width of {number} is larger than the sandbox allows"
    return None


class _LimitedCodeGenerator(CodeGenerator):
    """Writes the budget's hooks into compiled templates: loops and ``~`` concatenation."""

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        # Jinja forbids custom node types, so the loop's iterable is marked and wrapped
        # when the generator reaches it.
        if not node.recursive:  # a recursive loop is guarded through 'reciter' (see write)
            self._loop_iterables = getattr(self, "_loop_iterables", set()) | {id(node.iter)}
        super().visit_For(node, frame)

    def write(self, x: str) -> None:
        # A recursive loop iterates its function's 'reciter' argument, not node.iter:
        # every level of a recursive loop (loop(children)) is counted too.
        super().write("environment.guarded_iter(reciter)" if x == "reciter" else x)

    def visit(self, node: nodes.Node, *args: Any, **kwargs: Any) -> Any:
        if id(node) in getattr(self, "_loop_iterables", ()):
            self.write("environment.guarded_iter(")
            super().visit(node, *args, **kwargs)
            self.write(")")
            return None
        return super().visit(node, *args, **kwargs)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.checked_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


def _limited_filter(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that refuses sizes it can see in advance and results that are too long."""

    @functools.wraps(original)
    def limited(*args: Any, **kwargs: Any) -> Any:
        values = [a for a in args if not hasattr(a, "environment")]  # skip a passed context
        numbers = [v for v in (*values[1:], *kwargs.values()) if isinstance(v, int)]
        if name in _SIZING_FILTERS and any(abs(n) > MAX_RENDERED_CHARS for n in numbers):
            raise SecurityError(f"the {name} filter was given a size over {MAX_RENDERED_CHARS:,}, the limit")
        if name == "replace" and len(values) >= 3:
            text, old, new = (str(v) for v in values[:3])
            size = len(text) + (text.count(old) if old else len(text) + 1) * len(new)
            if size > MAX_RENDERED_CHARS:
                raise _too_long(size, "the replaced text")
        if name == "join" and values and isinstance(values[0], list | tuple):
            separator = str(values[1]) if len(values) > 1 else str(kwargs.get("d", ""))
            size = sum(len(str(v)) for v in values[0]) + len(separator) * len(values[0])
            if size > MAX_RENDERED_CHARS:
                raise _too_long(size, "the joined text")
        if name == "format" and (problem := _format_problem(values[0] if values else None)):
            raise SecurityError(problem)
        return _checked(original(*args, **kwargs))

    return limited


# Filters whose result can be much larger than their input ...
_GROWING_FILTERS = ("center", "indent", "replace", "join", "wordwrap", "format", "truncate", "batch", "slice")
# ... and those of them whose number arguments are sizes (a width, a count of pieces).
_SIZING_FILTERS = frozenset({"center", "indent", "wordwrap", "batch", "slice"})
# str methods whose number argument is the width of the result.
_SIZING_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})


class CatalogSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox with the module's budget; see the module note."""

    code_generator_class = _LimitedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals["range"] = _range
        for name in _GROWING_FILTERS:
            self.filters[name] = _limited_filter(name, self.filters[name])

    guarded_iter = staticmethod(_guarded)
    checked_concat = staticmethod(_concat)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int | float) and abs(right) > _MAX_EXPONENT:
            raise SecurityError(f"the exponent {right} is larger than the sandbox allows")
        if operator == "*":
            for sized, count in ((left, right), (right, left)):
                if isinstance(sized, str | list | tuple) and isinstance(count, int):
                    if len(sized) * count > MAX_RENDERED_CHARS:
                        raise _too_long(len(sized) * count, "the repeated value")
        if operator == "%" and (problem := _format_problem(left)):
            raise SecurityError(problem)
        return _checked(super().call_binop(context, operator, left, right))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 - Jinja's own signature
        name = getattr(__obj, "__name__", "")
        if name in _SIZING_METHODS:  # str.center / ljust / zfill / expandtabs build a string that wide
            for number in (v for v in (*args, *kwargs.values()) if isinstance(v, int)):
                if abs(number) > MAX_RENDERED_CHARS:
                    raise SecurityError(
                        f"{name}() was given a width of {number:,}; the limit is {MAX_RENDERED_CHARS:,}"
                    )
        bound_to = getattr(getattr(__obj, "__wrapped__", __obj), "__self__", None)  # the sandbox wraps str.format
        if isinstance(bound_to, str) and name in ("format", "format_map"):
            if wide := _BRACE_WIDTH.search(bound_to):
                raise SecurityError(f"a format width of {wide.group(1)} is larger than the sandbox allows")
        return _checked(super().call(__context, __obj, *args, **kwargs))


TEMPLATE_ENVIRONMENT = CatalogSandbox(
    undefined=StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,  # render exactly what was written, final newline included
    # A {% for %} or {% if %} on its own line leaves no blank line or indentation behind,
    # so templates can be laid out for reading without padding the prompt.
    trim_blocks=True,
    lstrip_blocks=True,
)


def render_limited(template: Template, variables: dict[str, Any]) -> str:
    """Render ``template`` within a fresh budget: streamed, counted, and timed.

    The chunks come straight from the compiled render function (what ``render`` joins)
    and are taken a batch at a time, so the counting runs in C: this is on every gateway
    call. A batch of chunks can pass the output limit by at most its own size, and each
    chunk is bounded by the value limit."""
    budget = _current.budget = _Budget()
    chunks = template.root_render_func(template.new_context(variables))
    parts: list[str] = []
    size = 0
    try:
        while batch := list(islice(chunks, _OUTPUT_BATCH)):
            size += sum(map(len, batch))
            if size > MAX_RENDERED_CHARS:
                raise SecurityError(f"the rendered text is longer than the {MAX_RENDERED_CHARS:,} character limit")
            parts += batch
            if time.perf_counter() > budget.deadline:
                check_clock()
    finally:
        _current.budget = None
    return "".join(parts)
