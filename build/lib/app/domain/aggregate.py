"""What invoices, payments and settlements share: state as a fold over their own events.

An aggregate is an immutable pydantic model. ``decide``-style methods validate a command against
the state and return new events without changing anything; ``apply`` returns the next state
from one event; ``replay`` rebuilds an aggregate from its whole history. The aggregate keeps that
history (a few to a few dozen events), which is how a redelivered command is recognised: its
``command_id`` is the ``causation_id`` of events already applied, and those same events are
returned again instead of new ones.

``to_dict``/``from_dict`` round-trip exactly through JSON-safe values, for Faust tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar, Generic, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, field_validator

from app.domain.errors import AggregateMismatch, EventOutOfOrder
from app.domain.events import DomainEvent, EventData, parse_event
from app.domain.fields import Identifier

E = TypeVar("E", bound=DomainEvent)
NewEvent = TypeVar("NewEvent", bound=DomainEvent)


class Aggregate(BaseModel, Generic[E]):
    model_config = ConfigDict(frozen=True, extra="forbid")

    AGGREGATE: ClassVar[str]

    merchant_id: Identifier
    version: int = Field(default=0, ge=0)
    # Each event is stored with its own fields (SerializeAsAny) and read back as its own class
    # (``parse_event``, by event_type); pydantic then checks it belongs to the family ``E``.
    history: tuple[SerializeAsAny[E], ...] = ()

    @field_validator("history", mode="before")
    @classmethod
    def _events_by_type(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return tuple(parse_event(item) if isinstance(item, Mapping) else item for item in value)
        return value

    @property
    def aggregate_id(self) -> str:
        raise NotImplementedError  # pragma: no cover - every aggregate names its id

    @classmethod
    def replay(cls, events: Sequence[E]) -> Self:
        """The aggregate rebuilt from its events, oldest first; the first one creates it."""
        if not events:
            raise ValueError(f"a {cls.AGGREGATE} is rebuilt from at least its creating event")
        first = events[0]
        if first.aggregate_version != 1:
            raise EventOutOfOrder(
                f"{cls.AGGREGATE} {first.aggregate_id} history starts at version "
                f"{first.aggregate_version}, not 1"
            )
        born = cls._born(first).model_copy(update={"version": 1, "history": (first,)})
        return born.apply_all(events[1:])

    def apply(self, event: E) -> Self:
        """The state after ``event``; an event already applied (same id) changes nothing."""
        if event.aggregate_type != self.AGGREGATE or event.aggregate_id != self.aggregate_id:
            raise AggregateMismatch(
                f"{event.event_type} of {event.aggregate_type} {event.aggregate_id} "
                f"cannot apply to {self.AGGREGATE} {self.aggregate_id}"
            )
        if event.aggregate_version <= self.version:
            if self.history[event.aggregate_version - 1].event_id == event.event_id:
                return self
            raise self._out_of_order(event)
        if event.aggregate_version != self.version + 1:
            raise self._out_of_order(event)
        evolved = self._evolve(event)
        return evolved.model_copy(
            update={"version": event.aggregate_version, "history": (*self.history, event)}
        )

    def apply_all(self, events: Iterable[E]) -> Self:
        state = self
        for event in events:
            state = state.apply(event)
        return state

    def events_caused_by(self, command_id: str) -> list[E]:
        """The events a command already yielded here: what to return when it comes again."""
        return [event for event in self.history if event.causation_id == command_id]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe values (amounts as decimal strings) that ``from_dict`` reads back exactly."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls.model_validate(data)

    # --- for subclasses -------------------------------------------------------------------------

    @classmethod
    def _born(cls, event: E) -> Self:
        """The aggregate its creating event describes."""
        raise NotImplementedError  # pragma: no cover

    def _evolve(self, event: E) -> Self:
        """The state after ``event`` (version and history are handled by ``apply``)."""
        raise NotImplementedError  # pragma: no cover

    def _record(
        self,
        event_type: type[NewEvent],
        command_id: str,
        occurred_at: datetime,
        data: EventData,
    ) -> NewEvent:
        """The next event of this aggregate, caused by ``command_id``."""
        return event_type.record(
            aggregate_id=self.aggregate_id,
            aggregate_version=self.version + 1,
            merchant_id=self.merchant_id,
            causation_id=command_id,
            occurred_at=occurred_at,
            data=data,
        )

    def _check_addressed(self, aggregate_id: str) -> None:
        if aggregate_id != self.aggregate_id:
            raise AggregateMismatch(
                f"a command for {self.AGGREGATE} {aggregate_id} reached "
                f"{self.AGGREGATE} {self.aggregate_id}"
            )

    def _out_of_order(self, event: DomainEvent) -> EventOutOfOrder:
        return EventOutOfOrder(
            f"{event.event_type} {event.event_id} has version {event.aggregate_version} but "
            f"{self.AGGREGATE} {self.aggregate_id} is at version {self.version}"
        )
