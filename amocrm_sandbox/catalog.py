"""The fixed metadata of one fake account: pipelines with stages, users, and deal and contact custom fields.

Ids are derived from the account's position so that two accounts never share a pipeline, stage,
user or field id: the real amoCRM ids differ per account too, and code that hard-codes one
account's ids must fail against the other.
"""

from dataclasses import dataclass, field

# Won and lost: the same ids in every pipeline of every account (docs/amocrm.md#entities).
WON_STATUS_ID = 142
LOST_STATUS_ID = 143
CLOSED_STATUS_IDS = frozenset({WON_STATUS_ID, LOST_STATUS_ID})

STATUS_TYPE_REGULAR = 0
STATUS_TYPE_UNSORTED = 1

# The enum codes amoCRM accepts for the predefined contact fields (docs/amocrm.md#entities).
PHONE_ENUM_CODES = ("WORK", "WORKDD", "MOB", "FAX", "HOME", "OTHER")
EMAIL_ENUM_CODES = ("WORK", "PRIV", "OTHER")

UTM_TRACKING_CODES = ("UTM_SOURCE", "UTM_MEDIUM", "UTM_CAMPAIGN", "UTM_TERM", "UTM_CONTENT", "UTM_REFERRER")
# The other codes of amoCRM's "Statistics" group that hold click and analytics ids (docs/amocrm.md#entities);
# like a real account, no MSCLKID, GBRAID, WBRAID or VK field.
ID_TRACKING_CODES = ("GCLID", "YCLID", "FBCLID", "GCLIENTID", "_YM_UID", "ROISTAT")
TRACKING_CODES = UTM_TRACKING_CODES + ID_TRACKING_CODES


@dataclass(frozen=True)
class Status:
    id: int
    name: str
    sort: int
    color: str
    type: int = STATUS_TYPE_REGULAR
    is_editable: bool = True


@dataclass(frozen=True)
class Pipeline:
    id: int
    name: str
    sort: int
    is_main: bool
    statuses: tuple[Status, ...]

    def status(self, status_id: int) -> Status | None:
        return next((status for status in self.statuses if status.id == status_id), None)

    @property
    def first_stage(self) -> Status:
        """Where a deal lands when only the pipeline is given: the first stage after "unsorted"."""
        return next(status for status in self.statuses if status.type == STATUS_TYPE_REGULAR)

    @property
    def unsorted_stage(self) -> Status:
        return next(status for status in self.statuses if status.type == STATUS_TYPE_UNSORTED)


@dataclass(frozen=True)
class LossReason:
    """Why a deal was lost: a list the account's administrator keeps; a manager picks one when closing as lost."""

    id: int
    name: str
    sort: int


# The reasons a new account offers (amoCRM starts with an empty list; these make the reports testable).
LOSS_REASON_NAMES = ("Дорого", "Выбрали конкурента", "Не дозвонились")


@dataclass(frozen=True)
class User:
    id: int
    name: str
    email: str
    is_admin: bool
    is_active: bool = True


@dataclass(frozen=True)
class Enum:
    id: int
    value: str
    sort: int


@dataclass(frozen=True)
class CustomField:
    id: int
    name: str
    type: str
    entity_type: str
    sort: int
    code: str | None = None
    enums: tuple[Enum, ...] = ()
    group_id: str | None = None

    def enum_by_id(self, enum_id: int) -> Enum | None:
        return next((enum for enum in self.enums if enum.id == enum_id), None)

    def enum_by_value(self, value: str) -> Enum | None:
        return next((enum for enum in self.enums if enum.value == value), None)


@dataclass
class FieldSet:
    """The custom fields of one entity type, looked up by id or by code."""

    fields: list[CustomField] = field(default_factory=list)

    def by_id(self, field_id: int) -> CustomField | None:
        return next((item for item in self.fields if item.id == field_id), None)

    def by_code(self, code: str) -> CustomField | None:
        return next((item for item in self.fields if item.code == code), None)


@dataclass
class Catalog:
    pipelines: list[Pipeline]
    users: list[User]
    lead_fields: FieldSet
    contact_fields: FieldSet
    loss_reasons: tuple[LossReason, ...] = ()

    def loss_reason(self, reason_id: int) -> LossReason | None:
        return next((reason for reason in self.loss_reasons if reason.id == reason_id), None)

    @property
    def main_pipeline(self) -> Pipeline:
        return next(pipeline for pipeline in self.pipelines if pipeline.is_main)

    def pipeline(self, pipeline_id: int) -> Pipeline | None:
        return next((pipeline for pipeline in self.pipelines if pipeline.id == pipeline_id), None)

    def pipelines_with_status(self, status_id: int) -> list[Pipeline]:
        return [pipeline for pipeline in self.pipelines if pipeline.status(status_id)]

    def user(self, user_id: int) -> User | None:
        return next((user for user in self.users if user.id == user_id), None)

    @property
    def admin(self) -> User:
        return next(user for user in self.users if user.is_admin)


def build_catalog(*, position: int, tracking_codes: tuple[str, ...]) -> Catalog:
    """Metadata for the account at `position` (0-based) in the sandbox."""
    return Catalog(
        pipelines=_pipelines(position),
        users=_users(position),
        lead_fields=_lead_fields(position, tracking_codes),
        contact_fields=_contact_fields(position),
        loss_reasons=tuple(LossReason(id=(position + 1) * 100000 + 900 + index, name=name, sort=(index + 1) * 10)
                           for index, name in enumerate(LOSS_REASON_NAMES)),
    )


def _pipelines(position: int) -> list[Pipeline]:
    layouts = [
        ("Воронка", ["Первичный контакт", "Переговоры", "Принимают решение"]),
        ("Партнёры", ["Заявка партнёра", "Договор"]),
    ]
    pipelines = []
    for number, (name, stage_names) in enumerate(layouts, start=1):
        base = 60_000_000 + position * 1000 + number * 10
        statuses = [Status(id=base + 1, name="Неразобранное", sort=10, color="#c1c1c1", type=STATUS_TYPE_UNSORTED,
                           is_editable=False)]
        for offset, stage_name in enumerate(stage_names, start=2):
            statuses.append(Status(id=base + offset, name=stage_name, sort=offset * 10, color="#99ccff"))
        statuses.append(Status(id=WON_STATUS_ID, name="Успешно реализовано", sort=10000, color="#CCFF66",
                               is_editable=False))
        statuses.append(Status(id=LOST_STATUS_ID, name="Закрыто и не реализовано", sort=11000, color="#D5D8DB",
                               is_editable=False))
        pipelines.append(Pipeline(id=5_000_000 + position * 100 + number, name=name, sort=number,
                                  is_main=number == 1, statuses=tuple(statuses)))
    return pipelines


def _users(position: int) -> list[User]:
    base = 9_000_000 + position * 100
    return [
        User(id=base + 1, name="Администратор", email=f"admin{position + 1}@sandbox.test", is_admin=True),
        # Deactivated in amoCRM: keeps their deals, takes no new ones (the round-robin skips them).
        User(id=base + 3, name="Олег Уволенный", email=f"oleg{position + 1}@sandbox.test", is_admin=False,
             is_active=False),
        User(id=base + 2, name="Анна Менеджер", email=f"anna{position + 1}@sandbox.test", is_admin=False),
    ]


def _lead_fields(position: int, tracking_codes: tuple[str, ...]) -> FieldSet:
    ids = iter(range(700_000 + position * 1000 + 1, 700_000 + position * 1000 + 1000))
    enum_ids = iter(range(1_000_000 + position * 10_000 + 1, 1_000_000 + position * 10_000 + 10_000))
    def tracking(codes, first_sort):
        return [CustomField(id=next(ids), name=code.lower(), type="tracking_data", entity_type="leads", sort=sort,
                            code=code, group_id="statistic") for sort, code in enumerate(codes, start=first_sort)]

    # The UTM fields first and the click-id fields after the others, so the ids of fields that existed
    # before the click-id ones were added stay what they were.
    fields = tracking([code for code in tracking_codes if code in UTM_TRACKING_CODES], 1)
    fields += [
        CustomField(id=next(ids), name="Комментарий клиента", type="textarea", entity_type="leads", sort=100),
        CustomField(id=next(ids), name="Тип клиента", type="select", entity_type="leads", sort=101,
                    enums=tuple(Enum(id=next(enum_ids), value=value, sort=sort)
                                for sort, value in enumerate(["Розница", "Опт", "Партнёр"], start=1))),
        CustomField(id=next(ids), name="Интересы", type="multiselect", entity_type="leads", sort=102,
                    enums=tuple(Enum(id=next(enum_ids), value=value, sort=sort)
                                for sort, value in enumerate(["Доставка", "Монтаж", "Сервис"], start=1))),
        CustomField(id=next(ids), name="Количество", type="numeric", entity_type="leads", sort=103),
        CustomField(id=next(ids), name="Дата обращения", type="date", entity_type="leads", sort=104),
        CustomField(id=next(ids), name="Согласие на рассылку", type="checkbox", entity_type="leads", sort=105),
        CustomField(id=next(ids), name="Страница заявки", type="url", entity_type="leads", sort=106),
    ]
    fields += tracking([code for code in tracking_codes if code not in UTM_TRACKING_CODES], len(UTM_TRACKING_CODES) + 1)
    return FieldSet(fields)


def _contact_fields(position: int) -> FieldSet:
    base = 800_000 + position * 1000
    enum_base = 2_000_000 + position * 10_000

    def enums(first_id: int, codes: tuple[str, ...]) -> tuple[Enum, ...]:
        return tuple(Enum(id=first_id + sort, value=code, sort=sort) for sort, code in enumerate(codes, start=1))

    return FieldSet([
        CustomField(id=base + 1, name="Должность", type="text", entity_type="contacts", sort=1, code="POSITION"),
        CustomField(id=base + 2, name="Телефон", type="multitext", entity_type="contacts", sort=2, code="PHONE",
                    enums=enums(enum_base, PHONE_ENUM_CODES)),
        CustomField(id=base + 3, name="Email", type="multitext", entity_type="contacts", sort=3, code="EMAIL",
                    enums=enums(enum_base + 100, EMAIL_ENUM_CODES)),
    ])
