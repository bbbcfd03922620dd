"""The entities one fake account stores (deals, contacts, companies, notes, incoming leads) and their API shape."""

from dataclasses import asdict, dataclass, field
from typing import Any

from .catalog import CLOSED_STATUS_IDS, CustomField, FieldSet

# custom_fields_values as stored: field id → the values in read shape ({"value": ..., "enum_id": ...}).
FieldValues = dict[int, list[dict]]


@dataclass
class Tag:
    id: int
    name: str


@dataclass
class Deal:
    id: int
    name: str
    price: int
    status_id: int
    pipeline_id: int
    responsible_user_id: int
    created_by: int
    updated_by: int
    created_at: int
    updated_at: int
    closed_at: int | None = None
    custom_fields: FieldValues = field(default_factory=dict)
    tag_ids: list[int] = field(default_factory=list)
    contact_ids: list[int] = field(default_factory=list)
    company_id: int | None = None
    is_deleted: bool = False
    loss_reason_id: int | None = None


@dataclass
class Contact:
    id: int
    name: str
    first_name: str
    last_name: str
    responsible_user_id: int
    created_by: int
    updated_by: int
    created_at: int
    updated_at: int
    custom_fields: FieldValues = field(default_factory=dict)
    tag_ids: list[int] = field(default_factory=list)
    company_id: int | None = None
    is_unsorted: bool = False


@dataclass
class Company:
    id: int
    name: str
    created_at: int


@dataclass
class Note:
    id: int
    entity_id: int
    note_type: str
    params: dict
    created_by: int
    created_at: int


@dataclass
class Task:
    id: int
    entity_id: int | None
    entity_type: str | None
    text: str
    complete_till: int
    task_type_id: int
    responsible_user_id: int
    created_by: int
    created_at: int
    is_completed: bool = False


@dataclass
class UnsortedLead:
    uid: str
    source_uid: str
    source_name: str
    pipeline_id: int
    created_at: int
    metadata: dict
    deal_id: int
    contact_ids: list[int]
    company_id: int | None = None


@dataclass
class DealChange:
    """What an update changed, for the webhook events it triggers."""

    changed: bool
    old_status_id: int
    old_pipeline_id: int
    old_responsible_user_id: int

    def status_changed(self, deal: Deal) -> bool:
        return deal.status_id != self.old_status_id or deal.pipeline_id != self.old_pipeline_id


class IdSequence:
    """Ids of one kind of entity, in increasing order, never handed out twice.

    amoCRM never reuses an id, and the product relies on that: a deal id it stored names that
    deal for good. So the sequence outlives a reset of the entities and, with a state file, a
    restart of the sandbox (persistence.py).
    """

    def __init__(self, start: int) -> None:
        self.next_id = start

    def __next__(self) -> int:
        value = self.next_id
        self.next_id += 1
        return value

    def move_past(self, used: int) -> None:
        self.next_id = max(self.next_id, used + 1)


@dataclass
class EntityIds:
    """The id sequences of one account. Each kind counts from its own range, so a contact id passed as a deal id
    is caught, and accounts count from different ranges."""

    deals: IdSequence
    contacts: IdSequence
    companies: IdSequence
    notes: IdSequence
    tags: IdSequence
    tasks: IdSequence

    @classmethod
    def for_position(cls, position: int) -> "EntityIds":
        base = position * 1_000_000
        return cls(deals=IdSequence(20_000_001 + base), contacts=IdSequence(30_000_001 + base),
                   companies=IdSequence(40_000_001 + base), notes=IdSequence(50_000_001 + base),
                   tags=IdSequence(90_001 + position * 10_000), tasks=IdSequence(60_000_001 + base))

    def export(self) -> dict[str, int]:
        return {kind: sequence.next_id for kind, sequence in vars(self).items()}

    def restore(self, saved: dict[str, int]) -> None:
        """Continue after the saved positions (never go back below where this run already is)."""
        for kind, sequence in vars(self).items():
            sequence.move_past(int(saved.get(kind, 0)) - 1)


class EntityStore:
    """All entities of one account; callers hold the account lock."""

    def __init__(self, *, ids: EntityIds) -> None:
        self._deal_ids = ids.deals
        self._contact_ids = ids.contacts
        self._company_ids = ids.companies
        self._note_ids = ids.notes
        self._tag_ids = ids.tags
        self._task_ids = ids.tasks
        self.tasks: dict[int, Task] = {}
        self.deals: dict[int, Deal] = {}
        self.contacts: dict[int, Contact] = {}
        self.companies: dict[int, Company] = {}
        self.notes: dict[int, Note] = {}
        self.unsorted: dict[str, UnsortedLead] = {}
        self.tags: dict[str, dict[str, Tag]] = {"leads": {}, "contacts": {}}

    def export(self) -> dict:
        """Everything stored, as JSON-ready data (persistence.py)."""
        return {
            "deals": [asdict(deal) for deal in self.deals.values()],
            "contacts": [asdict(contact) for contact in self.contacts.values()],
            "companies": [asdict(company) for company in self.companies.values()],
            "notes": [asdict(note) for note in self.notes.values()],
            "tasks": [asdict(task) for task in self.tasks.values()],
            "unsorted": [asdict(item) for item in self.unsorted.values()],
            "tags": {entity_type: [asdict(tag) for tag in tags.values()] for entity_type, tags in self.tags.items()},
        }

    def restore(self, saved: dict) -> None:
        """Take back what export() gave; the id sequences move past every id found."""
        for data in saved.get("deals", []):
            deal = Deal(**{**data, "custom_fields": _field_values(data["custom_fields"])})
            self.deals[deal.id] = deal
            self._deal_ids.move_past(deal.id)
        for data in saved.get("contacts", []):
            contact = Contact(**{**data, "custom_fields": _field_values(data["custom_fields"])})
            self.contacts[contact.id] = contact
            self._contact_ids.move_past(contact.id)
        for data in saved.get("companies", []):
            company = Company(**data)
            self.companies[company.id] = company
            self._company_ids.move_past(company.id)
        for data in saved.get("notes", []):
            note = Note(**data)
            self.notes[note.id] = note
            self._note_ids.move_past(note.id)
        for data in saved.get("tasks", []):
            task = Task(**data)
            self.tasks[task.id] = task
            self._task_ids.move_past(task.id)
        for data in saved.get("unsorted", []):
            item = UnsortedLead(**data)
            self.unsorted[item.uid] = item
        for entity_type, tags in saved.get("tags", {}).items():
            for data in tags:
                tag = Tag(**data)
                self.tags.setdefault(entity_type, {})[tag.name] = tag
                self._tag_ids.move_past(tag.id)

    def live_deal(self, deal_id: int) -> Deal | None:
        deal = self.deals.get(deal_id)
        return deal if deal and not deal.is_deleted else None

    def tag_named(self, entity_type: str, name: str) -> Tag:
        tags = self.tags[entity_type]
        if name not in tags:
            tags[name] = Tag(id=next(self._tag_ids), name=name)
        return tags[name]

    def tag_by_id(self, entity_type: str, tag_id: int) -> Tag | None:
        return next((tag for tag in self.tags[entity_type].values() if tag.id == tag_id), None)

    def create_deal(self, changes: dict, *, now: int, user_id: int) -> Deal:
        # Stage 0 until the changes are applied, so that creating a deal as won sets closed_at.
        deal = Deal(
            id=next(self._deal_ids), name="", price=0, status_id=0, pipeline_id=0,
            responsible_user_id=user_id, created_by=user_id, updated_by=user_id,
            created_at=changes.get("created_at", now), updated_at=changes.get("updated_at", now),
        )
        self.deals[deal.id] = deal
        self._apply_deal(deal, changes, now=now)
        deal.name = deal.name or f"Сделка #{deal.id}"
        return deal

    def update_deal(self, deal: Deal, changes: dict, *, now: int, user_id: int) -> DealChange:
        change = DealChange(changed=bool(changes), old_status_id=deal.status_id, old_pipeline_id=deal.pipeline_id,
                            old_responsible_user_id=deal.responsible_user_id)
        self._apply_deal(deal, changes, now=now)
        deal.updated_by = user_id
        deal.updated_at = changes.get("updated_at", now)
        return change

    def _apply_deal(self, deal: Deal, changes: dict, *, now: int) -> None:
        for name in ("name", "price", "responsible_user_id", "created_at"):
            if name in changes:
                setattr(deal, name, changes[name])
        if "status_id" in changes:
            was_closed = deal.status_id in CLOSED_STATUS_IDS
            deal.status_id, deal.pipeline_id = changes["status_id"], changes["pipeline_id"]
            if deal.status_id in CLOSED_STATUS_IDS and not was_closed:
                deal.closed_at = changes.get("closed_at", now)
            elif deal.status_id not in CLOSED_STATUS_IDS:
                deal.closed_at = None
        if "closed_at" in changes and deal.status_id in CLOSED_STATUS_IDS:
            deal.closed_at = changes["closed_at"]
        _apply_fields(deal.custom_fields, changes.get("custom_fields", []))
        self._apply_tags(deal.tag_ids, "leads", changes)
        for contact_id in changes.get("contact_ids", []):
            if contact_id not in deal.contact_ids:
                deal.contact_ids.append(contact_id)
        if "company_id" in changes:
            deal.company_id = changes["company_id"]

    def create_contact(self, changes: dict, *, now: int, user_id: int) -> Contact:
        contact = Contact(
            id=next(self._contact_ids), name="", first_name="", last_name="",
            responsible_user_id=changes.get("responsible_user_id", user_id), created_by=user_id, updated_by=user_id,
            created_at=changes.get("created_at", now), updated_at=changes.get("updated_at", now),
        )
        self.contacts[contact.id] = contact
        self.update_contact(contact, changes, now=now, user_id=user_id)
        return contact

    def update_contact(self, contact: Contact, changes: dict, *, now: int, user_id: int) -> None:
        for name in ("first_name", "last_name", "responsible_user_id", "company_id", "is_unsorted"):
            if name in changes:
                setattr(contact, name, changes[name])
        if "name" in changes:
            contact.name = changes["name"]
        elif {"first_name", "last_name"} & set(changes):
            contact.name = " ".join(part for part in (contact.first_name, contact.last_name) if part)
        _apply_fields(contact.custom_fields, changes.get("custom_fields", []))
        self._apply_tags(contact.tag_ids, "contacts", changes)
        contact.updated_by = user_id
        contact.updated_at = changes.get("updated_at", now)

    def create_company(self, name: str, *, now: int) -> Company:
        company = Company(id=next(self._company_ids), name=name, created_at=now)
        self.companies[company.id] = company
        return company

    def create_note(self, *, entity_id: int, note_type: str, params: dict, now: int, user_id: int) -> Note:
        note = Note(id=next(self._note_ids), entity_id=entity_id, note_type=note_type, params=params,
                    created_by=user_id, created_at=now)
        self.notes[note.id] = note
        return note

    def create_task(self, task: dict, *, now: int, user_id: int) -> Task:
        created = Task(id=next(self._task_ids), created_by=user_id, created_at=now, **task)
        self.tasks[created.id] = created
        return created

    def _apply_tags(self, tag_ids: list[int], entity_type: str, changes: dict) -> None:
        if "tags" in changes:
            tag_ids[:] = []
        for name in changes.get("tags", []) + changes.get("tags_to_add", []):
            tag = self.tag_named(entity_type, name)
            if tag.id not in tag_ids:
                tag_ids.append(tag.id)
        for name in changes.get("tags_to_delete", []):
            tag = self.tags[entity_type].get(name)
            if tag and tag.id in tag_ids:
                tag_ids.remove(tag.id)


def _field_values(saved: dict) -> FieldValues:
    """JSON turned the field ids into strings."""
    return {int(field_id): values for field_id, values in saved.items()}


def _apply_fields(stored: FieldValues, updates: list[tuple[CustomField, list[dict] | None]]) -> None:
    """A field given replaces all its values; `values: null` clears it; fields not given stay."""
    for custom_field, values in updates:
        if values is None:
            stored.pop(custom_field.id, None)
        else:
            stored[custom_field.id] = values


# ---------------------------------------------------------------------------------------------
# API shapes
# ---------------------------------------------------------------------------------------------


def link(href: str) -> dict:
    return {"self": {"href": href}}


def custom_fields_to_api(stored: FieldValues, field_set: FieldSet) -> list[dict] | None:
    """amoCRM answers `null`, not `[]`, when an entity has no custom field values."""
    rendered = []
    for field_id, values in stored.items():
        custom_field = field_set.by_id(field_id)
        rendered.append({
            "field_id": field_id,
            "field_name": custom_field.name if custom_field else "",
            "field_code": custom_field.code if custom_field else None,
            "field_type": custom_field.type if custom_field else "text",
            "values": [dict(value) for value in values],
        })
    return rendered or None


def deal_to_api(deal: Deal, account: Any, *, with_contacts: bool = False, with_loss_reason: bool = False) -> dict:
    store = account.store
    embedded: dict[str, Any] = {
        "tags": [_tag_to_api(store.tag_by_id("leads", tag_id)) for tag_id in deal.tag_ids],
        "companies": [{"id": deal.company_id, "_links": link(f"{account.origin}/api/v4/companies/{deal.company_id}")}]
        if deal.company_id else [],
    }
    if with_contacts:
        embedded["contacts"] = [
            {"id": contact_id, "is_main": position == 0,
             "_links": link(f"{account.origin}/api/v4/contacts/{contact_id}")}
            for position, contact_id in enumerate(deal.contact_ids)
        ]
    reason = account.catalog.loss_reason(deal.loss_reason_id) if deal.loss_reason_id else None
    if with_loss_reason and reason is not None:
        # An array of one, as amoCRM embeds it (docs/amocrm.md#entities).
        embedded["loss_reason"] = [{"id": reason.id, "name": reason.name, "sort": reason.sort,
                                    "_links": link(f"{account.origin}/api/v4/leads/loss_reasons/{reason.id}")}]
    return {
        "id": deal.id,
        "name": deal.name,
        "price": deal.price,
        "responsible_user_id": deal.responsible_user_id,
        "group_id": 0,
        "status_id": deal.status_id,
        "pipeline_id": deal.pipeline_id,
        "loss_reason_id": deal.loss_reason_id,
        "created_by": deal.created_by,
        "updated_by": deal.updated_by,
        "created_at": deal.created_at,
        "updated_at": deal.updated_at,
        "closed_at": deal.closed_at,
        "closest_task_at": None,
        "is_deleted": deal.is_deleted,
        "custom_fields_values": custom_fields_to_api(deal.custom_fields, account.catalog.lead_fields),
        "score": None,
        "account_id": account.account_id,
        "labor_cost": None,
        "_links": link(f"{account.origin}/api/v4/leads/{deal.id}"),
        "_embedded": embedded,
    }


def contact_to_api(contact: Contact, account: Any, *, with_leads: bool = False) -> dict:
    store = account.store
    embedded: dict[str, Any] = {
        "tags": [_tag_to_api(store.tag_by_id("contacts", tag_id)) for tag_id in contact.tag_ids],
        "companies": [{"id": contact.company_id,
                       "_links": link(f"{account.origin}/api/v4/companies/{contact.company_id}")}]
        if contact.company_id else [],
    }
    if with_leads:
        embedded["leads"] = [
            {"id": deal.id, "_links": link(f"{account.origin}/api/v4/leads/{deal.id}")}
            for deal in store.deals.values() if contact.id in deal.contact_ids and not deal.is_deleted
        ]
    return {
        "id": contact.id,
        "name": contact.name,
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "responsible_user_id": contact.responsible_user_id,
        "group_id": 0,
        "created_by": contact.created_by,
        "updated_by": contact.updated_by,
        "created_at": contact.created_at,
        "updated_at": contact.updated_at,
        "closest_task_at": None,
        "is_deleted": False,
        "is_unsorted": contact.is_unsorted,
        "custom_fields_values": custom_fields_to_api(contact.custom_fields, account.catalog.contact_fields),
        "account_id": account.account_id,
        "_links": link(f"{account.origin}/api/v4/contacts/{contact.id}"),
        "_embedded": embedded,
    }


def note_to_api(note: Note, account: Any) -> dict:
    return {
        "id": note.id,
        "entity_id": note.entity_id,
        "created_by": note.created_by,
        "updated_by": note.created_by,
        "created_at": note.created_at,
        "updated_at": note.created_at,
        "responsible_user_id": note.created_by,
        "group_id": 0,
        "note_type": note.note_type,
        "params": note.params,
        "account_id": account.account_id,
        "_links": link(f"{account.origin}/api/v4/leads/{note.entity_id}/notes/{note.id}"),
    }


def task_to_api(task: Task, account: Any) -> dict:
    return {
        "id": task.id,
        "created_by": task.created_by,
        "updated_by": task.created_by,
        "created_at": task.created_at,
        "updated_at": task.created_at,
        "responsible_user_id": task.responsible_user_id,
        "group_id": 0,
        "entity_id": task.entity_id,
        "entity_type": task.entity_type,
        "duration": 0,
        "is_completed": task.is_completed,
        "task_type_id": task.task_type_id,
        "text": task.text,
        "result": [],
        "complete_till": task.complete_till,
        "account_id": account.account_id,
        "_links": link(f"{account.origin}/api/v4/tasks/{task.id}"),
    }


def unsorted_to_api(item: UnsortedLead, account: Any) -> dict:
    return {
        "uid": item.uid,
        "source_uid": item.source_uid,
        "source_name": item.source_name,
        "category": "forms",
        "pipeline_id": item.pipeline_id,
        "created_at": item.created_at,
        "metadata": item.metadata,
        "account_id": account.account_id,
        "_links": link(f"{account.origin}/api/v4/leads/unsorted/{item.uid}"),
        "_embedded": {
            "leads": [{"id": item.deal_id}],
            "contacts": [{"id": contact_id} for contact_id in item.contact_ids],
            "companies": [{"id": item.company_id}] if item.company_id else [],
        },
    }


def _tag_to_api(tag: Tag | None) -> dict:
    return {"id": tag.id, "name": tag.name, "color": None} if tag else {}
