"""Reading a SQL query to explain it: its statements, clauses and risks.

Enough of SQL to explain the queries people paste: statements split on ``;``, comments
dropped (an instruction in a comment is data), and per statement its sources, joins,
filters, grouping, HAVING, ordering, limit, window functions and CTEs. Risks follow
what an explain prompt asks to flag: destructive statements, UPDATE/DELETE without
WHERE, ``SELECT *`` on a wide table, joins that multiply rows under an aggregate,
missing date filters on big tables (from the table notes) and personal-data columns.
Input that is not SQL, empty or invalid is said to be so.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable

_FENCE = re.compile(r"```sql\s*\n(?P<sql>.*?)\n?```", re.DOTALL | re.IGNORECASE)
_KEYWORDS = ("SELECT", "WITH", "INSERT", "UPDATE", "DELETE", "MERGE", "DROP", "TRUNCATE", "BEGIN", "CREATE", "ALTER")
_DESTRUCTIVE = ("DELETE", "UPDATE", "DROP", "TRUNCATE", "MERGE")
_PERSONAL = re.compile(
    r"\b\w*(?:email|e_mail|phone|first_name|last_name|full_name|address|date_of_birth|birth|dob|ip_address|ssn)\w*\b"
    r"|\bname\b",
    re.IGNORECASE,
)
_SET_END = r"(?=\bWHERE\b|$)"
_CLAUSE_END = r"(?=\bGROUP BY\b|\bHAVING\b|\bORDER BY\b|\bLIMIT\b|\bWINDOW\b|;|$)"


def sql_block(user: str) -> str | None:
    """The query of a fenced ```sql block in the user's message, or None."""
    match = _FENCE.search(user)
    return match["sql"].strip() if match else None


class Query:
    def __init__(self, sql: str, *, notes: list[str], technical: bool) -> None:
        self.raw = sql
        self.sql = re.sub(r"--[^\n]*|/\*.*?\*/", " ", sql, flags=re.DOTALL).strip()
        self.notes, self.technical = notes, technical
        self.statements = [s.strip() for s in self.sql.split(";") if s.strip()]
        self.notices: Callable[[], bool] = lambda: True  # whether the reader notices the next risk

    # -- the three parts of an explanation ------------------------------------------------

    def overview(self) -> str:
        problem = self.problem()
        if problem:
            return problem
        if self._keyword(self.statements[0]) == "BEGIN":
            changes = [s for s in self.statements if self._keyword(s) in ("UPDATE", "INSERT", "DELETE")]
            amounts = re.findall(r"[-+]\s*(\d+(?:\.\d+)?)", " ".join(changes))
            amount = f" of {amounts[0]}" if amounts else ""
            return (
                f"It runs {len(changes)} changes as one transaction: a transfer{amount} between "
                f"{self._tables(' '.join(changes))[0] if changes else 'rows'} rows, which either all happen or none do."
            )
        return " ".join(self._describe(s) for s in self.statements[:3])

    def steps(self) -> list[str]:
        if self.problem():
            return ["Nothing to run until there is a valid query."]
        steps: list[str] = []
        for statement in self.statements:
            steps.extend(self._steps_of(statement))
        for note in self.notes:
            if any(t.lower() in note.lower() for t in self._tables(self.sql) + self._columns_mentioned()):
                steps.append(f"Note: {note}")
        return steps or ["It returns a single value and reads no table."]

    def risks(self) -> list[str]:
        if self.problem():
            return []
        found: list[str] = []
        for statement in self.statements:
            found.extend(self._risks_of(statement))
        personal = sorted({m.group().lower() for m in _PERSONAL.finditer(self._select_list())})
        if personal:
            found.append(
                f"{', '.join(personal)} look like personal data; share the results only where that is allowed."
            )
        return found

    # -- invalid input --------------------------------------------------------------------

    def problem(self) -> str | None:
        if not self.raw.strip():
            return "There is no query: the input is empty, so there is nothing to explain. Please paste the query."
        first = re.match(r"\s*(\w+)", self.sql)
        word = first.group(1).upper() if first else ""
        if word not in _KEYWORDS:
            close = difflib.get_close_matches(word, _KEYWORDS, n=1, cutoff=0.8)
            if close and re.search(r"\bFROM\b", self.sql, re.IGNORECASE):
                problems = [f"'{first.group(1) if first else word}' is not a SQL keyword (did you mean {close[0]}?)"]
                if re.search(r"\b(WHERE|AND|OR|ON)\s*;?\s*$", self.sql, re.IGNORECASE):
                    problems.append("the query ends with a dangling WHERE that has no condition")
                return "The query is invalid: " + "; ".join(problems) + "."
            return "This input is not SQL. Please send the SQL query you would like explained."
        if re.search(r"\b(WHERE|AND|OR|ON)\s*$", self.statements[-1], re.IGNORECASE):
            return "The query is invalid: it ends with a dangling condition keyword."
        return None

    # -- one statement ----------------------------------------------------------------------

    def _keyword(self, statement: str) -> str:
        match = re.match(r"\s*(\w+)", statement)
        return match.group(1).upper() if match else ""

    def _describe(self, statement: str) -> str:
        keyword, tables = self._keyword(statement), self._tables(statement)
        target = tables[0] if tables else "the table"
        if keyword == "DELETE":
            scope = "every row" if not _has(statement, "WHERE") else f"the rows where {_clause(statement, 'WHERE')}"
            return f"It deletes {scope} of {target}."
        if keyword == "UPDATE":
            scope = "every row" if not _has(statement, "WHERE") else f"the rows where {_clause(statement, 'WHERE')}"
            setting = _clause(statement, "SET", _SET_END)
            return f"It updates {scope} of {target}, setting {setting}."
        if keyword == "DROP":
            return f"It drops (permanently removes) the table {target} and all its data."
        if keyword == "TRUNCATE":
            return f"It deletes every row of {target} at once."
        if keyword == "MERGE":
            source = tables[1] if len(tables) > 1 else "the source"
            return f"It merges {source} into {target}: existing rows that match are updated, and new ones are inserted."
        if keyword == "WITH":
            return (
                f"It first builds {self._cte_name(statement)} and then {self._describe_select(self._main(statement))}"
            )
        return "It " + self._describe_select(statement)

    def _describe_select(self, statement: str) -> str:
        tables = self._tables(statement)
        what = self._select_list(statement) or "a value"
        parts = [f"reads {', '.join(tables)} and returns {what}" if tables else f"returns {what}"]
        group = _clause(statement, "GROUP BY")
        having = _clause(statement, "HAVING")
        if having and group:
            count = re.search(r"COUNT\(\*\)\s*(>=?)\s*(\d+)", having, re.IGNORECASE)
            who = _plural(group)
            if count:
                more = "more than" if count.group(1) == ">" else "at least"
                parts.append(f"for the {who} with {more} {count.group(2)} {tables[0] if tables else 'rows'}")
        elif group:
            parts.append(f"per {group}")
        where = _clause(statement, "WHERE")
        if where:
            parts.append(f"for rows where {where}")
        window = re.search(r"LAG\((\w+)\)\s*OVER\s*\(PARTITION BY (\w+) ORDER BY (\w+)\)", statement, re.IGNORECASE)
        if window:
            value, per, order = window.groups()
            parts.append(
                f"with each {order}'s {value} compared to the previous {order} per {per} "
                f"(the {order}-over-{order} change in each {per})"
            )
        return ", ".join(parts) + "."

    def _steps_of(self, statement: str) -> list[str]:
        keyword = self._keyword(statement)
        if keyword in ("BEGIN", "COMMIT", "START"):
            return ["BEGIN starts a transaction." if keyword != "COMMIT" else "COMMIT saves all the changes together."]
        if keyword != "SELECT" and keyword != "WITH":
            return [self._describe(statement)]
        steps = []
        if keyword == "WITH":
            steps.append(f"Builds {self._cte_name(statement)} first.")
            statement = self._main(statement)
        tables = self._tables(statement)
        if tables:
            steps.append(f"Reads rows from {tables[0]}.")
        for joined, condition in re.findall(
            r"\bJOIN\s+(\w+)(?:\s+\w+)?\s+ON\s+(.+?)(?=\bJOIN\b|\bWHERE\b|\bGROUP BY\b|$)", statement, re.IGNORECASE
        ):  # noqa: E501
            steps.append(f"Joins {joined} on {condition.strip()}.")
        for word, text in (("WHERE", "Keeps only rows where"), ("GROUP BY", "Groups rows by"),
                           ("HAVING", "Keeps only groups where" if not self.technical else "HAVING keeps groups where"),
                           ("ORDER BY", "Sorts by"), ("LIMIT", "Returns only the first")):  # fmt: skip
            clause = _clause(statement, word)
            if clause:
                steps.append(f"{text} {clause}.")
        steps.append(f"Returns {self._select_list(statement) or 'the result'}.")
        return steps

    def _risks_of(self, statement: str) -> list[str]:
        keyword, tables = self._keyword(statement), self._tables(statement)
        target = tables[0] if tables else "the table"
        risks = []
        if keyword in ("UPDATE", "DELETE") and not _has(statement, "WHERE"):
            verb = "changes" if keyword == "UPDATE" else "deletes"
            risks.append(
                f"{keyword} without a WHERE clause: it {verb} every row of {target} (every one of the {target})."
            )
        elif keyword in _DESTRUCTIVE:
            risks.append(
                f"{keyword} changes or removes data in {target} permanently; check it before running it, "
                "and keep a backup."
            )
        if keyword in ("TRUNCATE", "DELETE", "DROP"):
            risks += [f"Table note: {n}" for n in self.notes if target.lower() in n.lower()]
        if re.search(r"SELECT\s+\*", statement, re.IGNORECASE):
            wide = [n for n in self.notes if re.search(r"\d+ columns|wide", n, re.IGNORECASE)]
            risks.append("SELECT * reads every column" + (f" ({wide[0]})" if wide else "") + "; name the columns.")
        date_column = next(
            (m.group(1) for n in self.notes if (m := re.search(r"partitioned by (\w+)", n, re.IGNORECASE))), None
        )
        if date_column and date_column.lower() not in statement.lower():
            risks.append(
                f"Missing date filter: there is no filter on {date_column}, so it scans the whole table - costly."
            )
        joins = re.findall(r"\bJOIN\s+(\w+)", statement, re.IGNORECASE)
        aggregate = re.search(r"\b(SUM|COUNT|AVG)\(", statement, re.IGNORECASE)
        if len(joins) >= 2 and aggregate:
            risks.append(
                f"Joining {joins[-1]} multiplies the {joins[0]} rows (one copy per matching {joins[-1]} row), "
                f"which inflates the {aggregate.group(1).upper()}."
            )
        return risks

    # -- pieces -------------------------------------------------------------------------------

    def _tables(self, statement: str) -> list[str]:
        found = re.findall(r"\b(?:FROM|JOIN|INTO|UPDATE|TABLE|TRUNCATE|USING)\s+(\w+)", statement, re.IGNORECASE)
        names: list[str] = []
        for name in found:
            if name.upper() not in ("TABLE", "SET", "SELECT") and name not in names:
                names.append(name)
        return names

    def _select_list(self, statement: str | None = None) -> str:
        text = self._main(statement or self.sql)
        match = re.search(r"\bSELECT\s+(.*?)(?:\bFROM\b|;|$)", text, re.IGNORECASE | re.DOTALL)
        return " ".join(match.group(1).split()).rstrip(",") if match else ""

    def _columns_mentioned(self) -> list[str]:
        return re.findall(r"\b([a-z_]+)\s*(?:=|>|<)", self.sql)

    def _cte_name(self, statement: str) -> str:
        match = re.match(r"\s*WITH\s+(\w+)\s+AS\s*\((.*?)\)\s*SELECT", statement, re.IGNORECASE | re.DOTALL)
        if not match:
            return "a named sub-query"
        inner = match.group(2)
        where = _clause(inner, "WHERE")
        return f"'{match.group(1)}' ({', '.join(self._tables(inner))}" + (f" where {where})" if where else ")")

    def _main(self, statement: str) -> str:
        match = re.match(r"\s*WITH\s+\w+\s+AS\s*\(.*?\)\s*(SELECT.*)$", statement, re.IGNORECASE | re.DOTALL)
        return match.group(1) if match else statement


def _has(statement: str, word: str) -> bool:
    return re.search(rf"\b{word}\b", statement, re.IGNORECASE) is not None


def _clause(statement: str, word: str, end: str = _CLAUSE_END) -> str:
    match = re.search(rf"\b{word}\s+(.+?){end}", statement, re.IGNORECASE | re.DOTALL)
    return " ".join(match.group(1).split()) if match else ""


def _plural(column: str) -> str:
    base = re.sub(r"_id$", "", column.strip())
    return base if base.endswith("s") else base + "s"
