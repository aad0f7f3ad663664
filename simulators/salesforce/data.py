"""The simulated org's schema (User, Account, Contact, Opportunity and a junction object
linking opportunities to Jira issues) and a plausible data generator.

Deterministic for a seed. Accounts carry revenue (AnnualRevenue, and a custom ARR__c on most),
currency, a custom segment, owner and website; contacts carry e-mail addresses on their
account's domain. SystemModstamps spread over the past year, so an incremental read after a
full one sees only what changed.
"""

from __future__ import annotations

import random
from typing import Any

from pmsync.simulators.salesforce.app import SalesforceSimulator
from pmsync.simulators.salesforce.model import FieldDef, SObjectTable

REGIONS = ["AMER", "EMEA", "APAC"]
SEGMENTS = ["Enterprise", "Mid-Market", "SMB"]
INDUSTRIES = ["Software", "Retail", "Finance", "Healthcare", "Manufacturing", "Education"]
CURRENCIES = ["USD", "USD", "USD", "EUR", "GBP"]
TYPES = ["Customer - Direct", "Customer - Channel", "Prospect", "Partner"]
SYLLABLES = ["ac", "me", "glo", "bex", "ini", "tech", "sta", "ra", "no", "vo", "lux", "tri", "on"]
FIRST = ["Ann", "Ben", "Chloe", "Dev", "Eva", "Farid", "Grace", "Hugo", "Ines", "Jun", "Kai"]
LAST = ["Smith", "Okafor", "Novak", "Garcia", "Chen", "Muller", "Rossi", "Tanaka", "Berg"]
YEAR = 365 * 86400


def _owner_region(sim: SalesforceSimulator, row: dict[str, Any]) -> Any:
    users = sim.tables["User"].rows
    owner = users.get(row.get("OwnerId") or "")
    return owner.get("Region__c") if owner else None


def user_table() -> SObjectTable:
    return SObjectTable.create(
        "User",
        "005",
        [
            FieldDef("Name", "string", "Full Name", length=121),
            FieldDef("Email", "email", "Email", length=128),
            FieldDef("IsActive", "boolean", "Active"),
            FieldDef("Region__c", "picklist", "Region", custom=True, length=255),
        ],
    )


def account_table() -> SObjectTable:
    return SObjectTable.create(
        "Account",
        "001",
        [
            FieldDef("Name", "string", "Account Name", nillable=False, length=255),
            FieldDef("Type", "picklist", "Account Type", length=255),
            FieldDef("Industry", "picklist", "Industry", length=255),
            FieldDef("Website", "url", "Website", length=255),
            FieldDef("AnnualRevenue", "currency", "Annual Revenue"),
            FieldDef("NumberOfEmployees", "int", "Employees"),
            FieldDef("CurrencyIsoCode", "picklist", "Account Currency", length=3),
            FieldDef("BillingCountry", "string", "Billing Country", length=80),
            FieldDef(
                "OwnerId",
                "reference",
                "Owner ID",
                reference_to=("User",),
                relationship_name="Owner",
                length=18,
            ),
            FieldDef(
                "ParentId",
                "reference",
                "Parent Account ID",
                reference_to=("Account",),
                relationship_name="Parent",
                length=18,
            ),
            FieldDef("ARR__c", "currency", "ARR", custom=True),
            FieldDef("Segment__c", "picklist", "Segment", custom=True, length=255),
            FieldDef("Open_Requests__c", "double", "Open Requests", custom=True),
            FieldDef(
                "Owner_Region__c",
                "string",
                "Owner Region",
                custom=True,
                updateable=False,
                formula=_owner_region,
                formula_text="Owner.Region__c",
                length=1300,
            ),
        ],
    )


def contact_table() -> SObjectTable:
    return SObjectTable.create(
        "Contact",
        "003",
        [
            FieldDef("FirstName", "string", "First Name", length=40),
            FieldDef("LastName", "string", "Last Name", nillable=False, length=80),
            FieldDef("Name", "string", "Full Name", updateable=False, length=121),
            FieldDef("Email", "email", "Email", length=80),
            FieldDef("Title", "string", "Title", length=128),
            FieldDef(
                "AccountId",
                "reference",
                "Account ID",
                reference_to=("Account",),
                relationship_name="Account",
                length=18,
            ),
            FieldDef(
                "OwnerId",
                "reference",
                "Owner ID",
                reference_to=("User",),
                relationship_name="Owner",
                length=18,
            ),
            FieldDef("Champion__c", "boolean", "Champion", custom=True),
        ],
    )


OPPORTUNITY_STAGES = {
    # stage: (probability %, closed, won), as a default Salesforce sales process has them
    "Prospecting": (10, False, False),
    "Qualification": (20, False, False),
    "Needs Analysis": (30, False, False),
    "Proposal/Price Quote": (60, False, False),
    "Negotiation/Review": (80, False, False),
    "Closed Won": (100, True, True),
    "Closed Lost": (0, True, False),
}
LOSS_REASONS = ("Missing feature", "Price", "Competitor", "No decision", "Timing")


def opportunity_table() -> SObjectTable:
    """Opportunity with the custom fields sales teams add: a field holding the Jira issue keys
    a deal waits on (free text, typed by hand) and the loss reason."""
    return SObjectTable.create(
        "Opportunity",
        "006",
        [
            FieldDef("Name", "string", "Opportunity Name", nillable=False, length=120),
            FieldDef(
                "AccountId",
                "reference",
                "Account ID",
                reference_to=("Account",),
                relationship_name="Account",
                length=18,
            ),
            FieldDef("Amount", "currency", "Amount"),
            FieldDef("CurrencyIsoCode", "picklist", "Opportunity Currency", length=3),
            FieldDef("StageName", "picklist", "Stage", nillable=False, length=255),
            FieldDef("Probability", "percent", "Probability (%)"),
            # Set from the stage by Salesforce: read-only through the API.
            FieldDef("IsClosed", "boolean", "Closed", updateable=False, nillable=False),
            FieldDef("IsWon", "boolean", "Won", updateable=False, nillable=False),
            FieldDef("CloseDate", "date", "Close Date", nillable=False),
            FieldDef("Type", "picklist", "Opportunity Type", length=255),
            FieldDef(
                "OwnerId",
                "reference",
                "Owner ID",
                reference_to=("User",),
                relationship_name="Owner",
                length=18,
            ),
            FieldDef("Jira_Issues__c", "string", "Jira Issues", custom=True, length=255),
            FieldDef("Loss_Reason__c", "picklist", "Loss Reason", custom=True, length=255),
        ],
    )


def currency_type_table() -> SObjectTable:
    """CurrencyType: the currencies of a multi-currency org (single-currency orgs lack it).

    ConversionRate is the number of units of IsoCode worth one unit of the corporate currency
    (the corporate currency's own rate is 1).
    """
    return SObjectTable.create(
        "CurrencyType",
        "01L",
        [
            FieldDef("IsoCode", "picklist", "Currency ISO Code", nillable=False, length=3),
            FieldDef("ConversionRate", "double", "Conversion Rate", nillable=False),
            FieldDef("DecimalPlaces", "int", "Decimal Places"),
            FieldDef("IsActive", "boolean", "Active"),
            FieldDef("IsCorporate", "boolean", "Corporate Currency", updateable=False),
        ],
    )


def opportunity_issue_table() -> SObjectTable:
    """A junction object some orgs keep instead of (or beside) a text field: one record per
    opportunity and Jira issue."""
    return SObjectTable.create(
        "Opportunity_Issue__c",
        "a0J",
        [
            FieldDef("Name", "string", "Opportunity Issue Name", length=80),
            FieldDef(
                "Opportunity__c",
                "reference",
                "Opportunity",
                custom=True,
                reference_to=("Opportunity",),
                relationship_name="Opportunity__r",
                length=18,
            ),
            FieldDef("Issue_Key__c", "string", "Jira Issue Key", custom=True, length=40),
        ],
        custom=True,
    )


def opportunity_values(stage: str) -> dict[str, Any]:
    """The fields Salesforce derives from a stage."""
    probability, closed, won = OPPORTUNITY_STAGES[stage]
    return {"StageName": stage, "Probability": probability, "IsClosed": closed, "IsWon": won}


def install_schema(sim: SalesforceSimulator) -> None:
    """Give the org the standard objects pmsync reads (idempotent)."""
    for make in (
        user_table,
        account_table,
        contact_table,
        opportunity_table,
        opportunity_issue_table,
    ):
        table = make()
        if table.name not in sim.tables:
            sim.add_object(table)


def install_currencies(
    sim: SalesforceSimulator, corporate: str, rates: dict[str, float], *, at: int | None = None
) -> dict[str, str]:
    """Make the org multi-currency: CurrencyType rows (units per corporate unit). Ids by code."""
    if "CurrencyType" not in sim.tables:
        sim.add_object(currency_type_table())
    created = {}
    for code, rate in {corporate: 1.0, **rates}.items():
        values = {
            "IsoCode": code,
            "ConversionRate": 1.0 if code == corporate else rate,
            "DecimalPlaces": 2,
            "IsActive": True,
            "IsCorporate": code == corporate,
        }
        created[code] = sim.insert("CurrencyType", values, at=at)
    return created


def _company(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()


def generate(
    sim: SalesforceSimulator,
    *,
    accounts: int = 100,
    contacts: int = 200,
    users: int = 12,
    seed: int = 7,
    arr_share: float = 0.7,
    spread: int = YEAR,
) -> dict[str, list[str]]:
    """Fill the org; returns the Ids created per object. Stamps spread over `spread` seconds
    ending a day before the simulator's now, in Id order."""
    install_schema(sim)
    rng = random.Random(seed)
    now = sim.now()
    created: dict[str, list[str]] = {"User": [], "Account": [], "Contact": []}
    start = now - spread - 86400
    for n in range(users):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        created["User"].append(
            sim.insert(
                "User",
                {
                    "Name": f"{first} {last}",
                    "Email": f"{first.lower()}.{last.lower()}{n}@vendor.example",
                    "IsActive": True,
                    "Region__c": REGIONS[n % len(REGIONS)],
                },
                at=start,
            )
        )
    domains: list[str] = []
    for n in range(accounts):
        name = f"{_company(rng)} {n}"
        domain = f"{name.split(maxsplit=1)[0].lower()}{n}.example"
        domains.append(domain)
        revenue = float(rng.randrange(50, 50_000) * 1000)
        values: dict[str, Any] = {
            "Name": name,
            "Type": rng.choice(TYPES),
            "Industry": rng.choice(INDUSTRIES),
            "Website": rng.choice([f"https://www.{domain}", f"http://{domain}/", domain]),
            "AnnualRevenue": revenue,
            "NumberOfEmployees": rng.randrange(5, 20_000),
            "CurrencyIsoCode": rng.choice(CURRENCIES),
            "BillingCountry": rng.choice(["US", "DE", "GB", "FR", "JP", "AU"]),
            "OwnerId": rng.choice(created["User"]),
            "ARR__c": float(int(revenue * rng.uniform(0.05, 0.3)))
            if rng.random() < arr_share
            else None,
            "Segment__c": rng.choice(SEGMENTS),
            "Open_Requests__c": float(rng.randrange(0, 40)),
        }
        at = start + (spread * (n + 1)) // max(1, accounts)
        created["Account"].append(sim.insert("Account", values, at=at))
    for n in range(contacts):
        index = rng.randrange(len(created["Account"])) if created["Account"] else -1
        first, last = rng.choice(FIRST), rng.choice(LAST)
        domain = domains[index] if index >= 0 else "example.com"
        values = {
            "FirstName": first,
            "LastName": last,
            "Name": f"{first} {last}",
            "Email": f"{first.lower()}.{last.lower()}{n}@{domain}",
            "Title": rng.choice(["CTO", "VP Product", "Engineer", "Support Lead", None]),
            "AccountId": created["Account"][index] if index >= 0 else None,
            "OwnerId": rng.choice(created["User"]),
            "Champion__c": rng.random() < 0.2,
        }
        at = start + (spread * (n + 1)) // max(1, contacts)
        created["Contact"].append(sim.insert("Contact", values, at=at))
    return created
