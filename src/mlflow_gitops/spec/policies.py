"""`policies:` of the root registry file: the rules' shape (their offline check is in
`spec/policy_check.py`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

RuleName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")]


class Override(BaseModel):
    """A label that lets a change through this rule when a member of one of `teams` set it on
    the pull request; the override is recorded in the apply's audit run."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    label: Annotated[str, Field(min_length=1, max_length=50)]
    teams: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)


class PolicyRule(BaseModel):
    """One rule: for every planned change where `if` holds, `require` must hold."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)

    name: RuleName = Field(description="The rule's name, unique in the file; shown on each change")
    if_: Annotated[str, Field(min_length=1)] = Field(
        default="true",
        alias="if",
        description="CEL: the changes the rule applies to (default: every change)",
    )
    require: Annotated[str, Field(min_length=1)] = Field(
        description="CEL: what must hold for such a change (over change, pr, plan, now)"
    )
    message: Annotated[str, Field(min_length=1, max_length=300)] = Field(
        description="What a change that breaks the rule still lacks, as the comment shows it"
    )
    override: Override | None = Field(
        default=None,
        description="A label set by a member of one of these teams lets a change through",
    )
