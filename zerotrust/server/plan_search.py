"""Resource search computed by the database: the plan's filter in a ``WHERE``.

For a resource type the ``search_database`` section maps to a table, a search asks
the PDP for the plan of the query (``pdp.plan``), turns it into a filter with
:mod:`zerotrust.plan.sqlalchemy` and pages through the table in ``id`` order (keyset
paging: a page token carries the last id returned, MACed as every page token is, and
bound to the query). Only rows the policies allow are ever read.

Where a plan is not a filter (not expressible, or it reads a property the section
does not map) the search decides the table's rows one by one, as for entities from a
file: the same answer, the old cost. The table's columns are read from the database at
start-up, so their types (what a comparison means) are the database's own.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import attrs

from zerotrust.errors import DecisionUnavailableError, RequestError
from zerotrust.server.config import SearchDatabaseConfig, SearchResourceConfig
from zerotrust.server.configbase import ServerConfigError
from zerotrust.server.entities import Entities, Entity

if TYPE_CHECKING:
    import sqlalchemy as sa

    from zerotrust.plan import Plan
    from zerotrust.server.search import PageTokens

__all__ = ["PlanSearch", "SearchPage"]

_log = logging.getLogger("zerotrust.server")
_ID = "resource.id"


@attrs.frozen
class SearchPage:
    """The ids of one page of allowed rows, in order, and the next page's token ("" on
    the last page)."""

    ids: tuple[str, ...]
    next_token: str


@attrs.frozen
class _Mapped:
    """One resource type's table: its id column (``order``: in CEL's order, the order
    of pages), its columns by attribute path and by property name."""

    table: sa.Table = attrs.field(hash=False)
    id: sa.Column[Any] = attrs.field(hash=False)
    order: Any = attrs.field(hash=False)
    columns: Mapping[str, Any] = attrs.field(hash=False)
    properties: Mapping[str, Any] = attrs.field(hash=False)


class PlanSearch:
    """The database of ``search_database``: one engine (a small pool) and its tables."""

    def __init__(self, config: SearchDatabaseConfig) -> None:
        """Connect and read every mapped table's columns; a missing table or column (or a
        database that cannot be reached) is a :class:`ServerConfigError` at start-up."""
        try:
            import sqlalchemy as sa
        except ImportError as exc:
            raise ServerConfigError(
                [(("search_database",), "needs SQLAlchemy: pip install 'zerotrust[sql]'")]
            ) from exc
        try:
            self._engine = sa.create_engine(config.url, pool_pre_ping=True)
        except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
            reason = f"not a usable database URL ({type(exc).__name__})"
            raise ServerConfigError([(("search_database", "url"), reason)]) from exc
        if isinstance(self._engine.pool, sa.QueuePool):  # (SQLite in memory has its own)
            self._engine = sa.create_engine(
                config.url, pool_pre_ping=True, pool_size=config.pool_size, max_overflow=0
            )
        metadata = sa.MetaData()
        self._types: dict[str, _Mapped] = {}
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for type_, resource in config.resources.items():
            where = ("search_database", "resources", type_)
            try:
                table = sa.Table(resource.table, metadata, autoload_with=self._engine)
            except sa.exc.NoSuchTableError:
                problems.append(((*where, "table"), f"no table {resource.table!r}"))
                continue
            except sa.exc.SQLAlchemyError as exc:
                self._engine.dispose()
                reason = str(exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc)
                raise ServerConfigError(
                    [(where, f"cannot read table {resource.table!r}: {reason.splitlines()[0]}")]
                ) from exc
            missing = _missing(resource, table)
            problems += [
                ((*where, key), f"no column {name!r} in {table.name}") for key, name in missing
            ]
            if not missing:
                self._types[type_] = _mapped(resource, table)
        if problems:
            self._engine.dispose()
            raise ServerConfigError(problems)

    def maps(self, resource_type: str) -> bool:
        return resource_type in self._types

    def page(
        self, plan: Plan, tokens: PageTokens, fingerprint: str, token: str | None, limit: int
    ) -> SearchPage | None:
        """The page of rows ``plan`` allows after ``token``'s id; None when the plan is
        not a filter of this table (the caller decides the rows instead)."""
        import sqlalchemy as sa

        from zerotrust.plan import NotExpressibleError
        from zerotrust.plan.sqlalchemy import to_filter

        mapped = self._types[plan.resource_type]
        try:
            statement = sa.select(mapped.id).where(to_filter(plan, mapped.columns))
            # (some filters are refused only for a database: compiled for it here)
            statement.compile(dialect=self._engine.dialect)
        except NotExpressibleError as exc:
            _log.info("resource search decides rows one by one: %s", exc)
            return None
        if token is not None:
            statement = statement.where(mapped.order > _after(tokens, token, fingerprint))
        statement = statement.order_by(mapped.order).limit(limit + 1)
        found = [row[0] for row in self._run(statement)]
        following = ""
        if len(found) > limit:  # looked ahead: there is a further row
            found = found[:limit]
            following = _token(tokens, found[-1], fingerprint)
        return SearchPage(tuple(str(id_) for id_ in found), following)

    def entities(self, resource_type: str) -> Entities:
        """Every row of the type's table as a search candidate, in id order (properties:
        the mapped columns that are not NULL)."""
        import sqlalchemy as sa

        mapped = self._types[resource_type]
        names = mapped.properties
        statement = sa.select(mapped.id, *names.values()).order_by(mapped.order)
        rows = self._run(statement)
        members = tuple(
            Entity(
                resource_type,
                str(row[0]),
                MappingProxyType(
                    {n: _plain(v) for n, v in zip(names, row[1:], strict=True) if v is not None}
                ),
            )
            for row in rows
        )
        return Entities(resources=MappingProxyType({resource_type: members}))

    def close(self) -> None:
        self._engine.dispose()

    def _run(self, statement: Any) -> list[Any]:
        """The statement's rows, read whole; a database that fails is no answer (503),
        never an empty one: :class:`DecisionUnavailableError`."""
        import sqlalchemy as sa

        try:
            with self._engine.connect() as connection:
                return list(connection.execute(statement).all())
        except sa.exc.SQLAlchemyError as exc:
            _log.error("the search database failed: %s", type(exc).__name__)
            raise DecisionUnavailableError("the search database is unavailable") from exc


def _missing(resource: SearchResourceConfig, table: sa.Table) -> list[tuple[str, str]]:
    wanted = [("id", resource.id)]
    wanted += [(f"properties.{p}", c) for p, c in resource.properties.items()]
    return [(key, name) for key, name in wanted if name not in table.c]


def _mapped(resource: SearchResourceConfig, table: sa.Table) -> _Mapped:
    import sqlalchemy as sa

    from zerotrust.plan.residual import Field
    from zerotrust.plan.sqlalchemy import by_code_point

    id_column = table.c[resource.id]
    # resource.id is a string in every request: a numeric id column is compared as its text.
    text = isinstance(id_column.type, sa.String)
    as_text = id_column if text else sa.cast(id_column, sa.String)
    # string ids page in code point order whatever the column's collation: under NOCASE
    # "a" and "A" are one key, and `id > last` would skip one of them
    order = by_code_point(id_column) if text else id_column
    properties = {p: table.c[c] for p, c in resource.properties.items()}
    columns: dict[str, Any] = {_ID: as_text}
    # a property named "a.b" is the row's property "a.b", not the map a's key b
    columns.update({Field(("properties", p)).name: c for p, c in properties.items()})
    return _Mapped(table, id_column, order, MappingProxyType(columns), MappingProxyType(properties))


def _plain(value: Any) -> Any:
    """A column's value as a request property: JSON's kinds kept, others as text."""
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _token(tokens: PageTokens, last: Any, fingerprint: str) -> str:
    """The last id (as JSON) and a MAC binding it to the query; ``plan`` in the MACed
    text keeps these apart from the index tokens of row-by-row searches."""
    text = json.dumps(last if isinstance(last, int | str) else str(last))
    head = base64.urlsafe_b64encode(text.encode("utf-8")).rstrip(b"=").decode("ascii")
    return head + "." + tokens.encode(0, f"plan\0{fingerprint}\0{text}")


def _after(tokens: PageTokens, token: str, fingerprint: str) -> Any:
    """The last id a token names; :class:`RequestError` if forged or for another query."""
    head, dot, mac = token.partition(".")
    try:
        text = base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)).decode("utf-8")
    except (ValueError, binascii.Error, UnicodeError):
        text = None
    if not dot or text is None:
        tokens.decode("", fingerprint)  # raises the one message every bad token gets
    tokens.decode(mac, f"plan\0{fingerprint}\0{text}")
    try:
        return json.loads(str(text))
    except ValueError as exc:  # MACed by this server, so never; refused all the same
        raise RequestError("page.token", "unknown page token") from exc
