"""The gateway's seams filled by the real features: the prompt catalog and budgets.

`CatalogPromptSource`: applications (team keys) run only the approved version a label
points at (`core.catalog.resolve.resolve`); a person in the playground may also run a
numbered version, and a version that is not approved only when they write prompts for
the owning team (`resolve_for_playground`).

`BudgetsGate`: the team's allow-list is the budgets' `TeamBudgetPolicy` (the only one),
prices are the price book with the database overrides, and every call is admitted by
`core.budgets.reservations.reserve` and settled into the usage ledger inside the
gateway's one settle transaction. A model without a price fails closed: 403
``model_not_priced``, since its cost could be neither bounded nor billed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlmodel import Session

from core import clock, db
from core.budgets import reservations, settlement
from core.budgets.pricing import cost_micro
from core.budgets.tokens import DEFAULT_MAX_OUTPUT_TOKENS
from core.budgets.usage import Usage
from core.catalog import resolve as catalog
from core.catalog.labels import PRODUCTION
from core.errors import NotFound, PermissionDenied
from core.gateway.errors import ModelNotAllowed, ModelNotPriced
from core.gateway.ports import AdmissionRead, BudgetRequest, CallOutcome, Reservation, ResolvedPrompt
from core.permissions import Actor
from core.settings import settings


class CatalogPromptSource:
    def resolve(
        self,
        name: str,
        label: str | None,
        caller: Actor,
        *,
        application: bool,
        version: int | None = None,
        assignment_key: str | None = None,
    ) -> ResolvedPrompt:
        with db.session() as session:
            if version is not None and not application:
                found = catalog.resolve_for_playground(
                    session=session, actor=caller, name=name, version_number=version, label=label or PRODUCTION
                )
            else:
                found = catalog.resolve(session, name, label or PRODUCTION, assignment_key=assignment_key)
        return ResolvedPrompt(
            name=found.prompt_name,
            version=f"v{found.version_number}",
            spec=found.spec,
            prompt_id=found.prompt_id,
            version_id=found.version_id,
        )


class BudgetsGate:
    def check_model(self, team_id: int, model: str) -> None:
        # Early, before the guardrails and moderation spend any work on a call that cannot
        # run; reservations.reserve checks the allow-list again for its other callers.
        # The cached settings: a session is opened only when one must be read again.
        policy = reservations.current_team_policy(None, team_id)
        book = reservations.current_price_book()
        if policy.allowed_models and book.resolve_model(model) not in {
            book.resolve_model(m) for m in policy.allowed_models
        }:
            raise ModelNotAllowed(
                f"The model {model!r} is not allowed for this team; allowed: {', '.join(policy.allowed_models)}"
            )
        try:
            book.price_at(model, clock.now())
        except NotFound:
            raise ModelNotPriced(
                f"The model {model!r} has no price in Quorum's price book, so its cost cannot "
                "be budgeted; an admin must add a price before it can be used"
            ) from None

    def allowed_models(self, team_id: int) -> list[str]:
        policy = reservations.current_team_policy(None, team_id)
        book = reservations.current_price_book()
        return sorted(policy.allowed_models or book.models())

    def reserve(self, request: BudgetRequest, *, also: AdmissionRead | None = None) -> Reservation:
        # Embeddings and moderations produce no output tokens to reserve for.
        embeddings = request.kind in ("embeddings", "moderations")
        max_tokens = 0 if embeddings else (request.max_output_tokens or DEFAULT_MAX_OUTPUT_TOKENS)
        # Embeddings have no output to cap: the read gets None, as the Reservation says.
        within = (
            None if also is None else (lambda connection, granted: also(connection, None if embeddings else granted))
        )
        try:
            # A pooled Connection, no ORM session: the admission is Core statements only.
            with db.get_engine().connect() as connection:
                held = reservations.reserve(
                    session=connection,
                    team_id=request.team_id,
                    model=request.model,
                    max_tokens=max_tokens,
                    input_tokens_upper_bound=request.input_tokens_upper_bound,
                    person_id=request.person_id,
                    key_id=request.key_id,
                    prompt_id=request.prompt_id,
                    prompt_version_id=request.prompt_version_id,
                    no_output=embeddings,
                    within=within,
                    ttl=timedelta(seconds=settings().reservation_ttl_s),
                )
        except PermissionDenied as error:
            raise ModelNotAllowed(str(error)) from None
        except NotFound as error:
            raise ModelNotPriced(str(error)) from None
        return Reservation(id=held.id, granted_max_tokens=None if embeddings else held.max_tokens, held=held)

    def cost_micro(self, reservation: Reservation | None, model: str, usage: Usage) -> int:
        """The call's cost at the price in effect when it started (what the ledger records)."""
        started = reservation.held.started_at if reservation is not None else clock.now()
        book = reservations.current_price_book()
        try:
            return cost_micro(book.price_at(model, started), usage)
        except NotFound:
            return 0  # refused before reserving: nothing was billed

    def settle(self, session: Session, reservation: Reservation, usage: Usage, outcome: CallOutcome) -> None:
        settlement.settle(
            session=session,
            reservation=reservation.held,
            usage=usage,
            latency_ms=outcome.latency_ms,
            status=outcome.status,
            cache_hit=outcome.cache_hit,
            request_id=outcome.request_id,
            as_record=False,
        )

    def settle_many(self, session: Session, settled: Sequence[tuple[Reservation, Usage, CallOutcome]]) -> None:
        settlement.settle_many(
            session=session,
            settlements=[
                settlement.Settlement(
                    reservation=reservation.held,
                    usage=usage,
                    latency_ms=outcome.latency_ms,
                    status=outcome.status,
                    cache_hit=outcome.cache_hit,
                    request_id=outcome.request_id,
                )
                for reservation, usage, outcome in settled
            ],
        )

    def release(self, reservation: Reservation, reason: str) -> None:
        with db.write_session() as session:
            settlement.release(session=session, reservation=reservation.held)
            session.commit()
