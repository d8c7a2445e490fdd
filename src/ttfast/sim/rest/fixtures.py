"""Seed data of the local REST server, shaped like the examples in tastytrade's developer docs.

Accounts, balances, positions, transactions, trading status, the customer, and the instrument
tables (equities, futures, future options, cryptocurrencies, option chains built around today's
next three Fridays). Pure builders and constants: nothing here touches server state.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from ttfast.sim.rest.wire import iso, now

__all__ = [
    "CRYPTOS",
    "CUSTOMER",
    "EQUITIES",
    "FUTURES",
    "FUTURE_OPTIONS",
    "QUANTITY_PRECISIONS",
    "build_chain",
    "future_option_chain_nested",
    "seed_account",
    "seed_balance",
    "seed_positions",
    "seed_trading_status",
    "seed_transactions",
]


def seed_account(n: str, nickname: str) -> dict[str, Any]:
    return {
        "account-number": n,
        "external-id": "A" + n,
        "opened-at": "2024-01-02T14:30:00.000+00:00",
        "nickname": nickname,
        "account-type-name": "Individual",
        "day-trader-status": False,
        "is-closed": False,
        "is-firm-error": False,
        "is-firm-proprietary": False,
        "is-futures-approved": True,
        "is-test-drive": False,
        "margin-or-cash": "Margin",
        "is-foreign": False,
        "investment-objective": "SPECULATION",
        "suitable-options-level": "No Restrictions",
        "created-at": "2024-01-02T14:30:00.000+00:00",
    }


def seed_balance(n: str) -> dict[str, Any]:
    z = "0.0"
    b: dict[str, Any] = {
        k: z
        for k in [
            "short-equity-value",
            "long-derivative-value",
            "short-derivative-value",
            "long-futures-value",
            "short-futures-value",
            "long-futures-derivative-value",
            "short-futures-derivative-value",
            "long-margineable-value",
            "short-margineable-value",
            "day-trading-buying-power",
            "futures-margin-requirement",
            "available-trading-funds",
            "maintenance-call-value",
            "reg-t-call-value",
            "day-trading-call-value",
            "day-equity-call-value",
            "pending-cash",
            "short-cryptocurrency-value",
            "unsettled-cryptocurrency-fiat-amount",
            "equity-offering-margin-requirement",
            "long-bond-value",
            "bond-margin-requirement",
            "futures-overnight-margin-requirement",
            "futures-intraday-margin-requirement",
            "pending-margin-interest",
        ]
    }
    b.update(
        {
            "account-number": n,
            "currency": "USD",
            "cash-balance": "7218.997",
            "long-equity-value": "24629.746",
            "margin-equity": "32520.734",
            "equity-buying-power": "45657.048",
            "derivative-buying-power": "22828.524",
            "maintenance-requirement": "9692.211",
            "net-liquidating-value": "32520.734",
            "cash-available-to-withdraw": "22828.53",
            "day-trade-excess": "22828.53",
            "pending-cash-effect": "None",
            "long-cryptocurrency-value": "671.991",
            "cryptocurrency-margin-requirement": "671.99207435",
            "unsettled-cryptocurrency-fiat-effect": "None",
            "closed-loop-available-balance": "22828.53",
            "used-derivative-buying-power": "9692.211",
            "snapshot-date": date.today().isoformat(),
            "reg-t-margin-requirement": "9692.21066152",
            "maintenance-excess": "22828.52392233",
            "effective-cryptocurrency-buying-power": "22828.524",
            "updated-at": iso(now()),
        }
    )
    return b


def seed_positions(n: str) -> list[dict[str, Any]]:
    base = {
        "account-number": n,
        "quantity-direction": "Long",
        "is-suppressed": False,
        "is-frozen": False,
        "restricted-quantity": "0.0",
        "realized-day-gain": "0.0",
        "realized-day-gain-effect": "None",
        "realized-today": "0.0",
        "realized-today-effect": "None",
        "created-at": "2024-08-22T17:56:51.872+00:00",
        "updated-at": iso(now()),
    }
    return [
        {
            **base,
            "symbol": "AAPL",
            "instrument-type": "Equity",
            "underlying-symbol": "AAPL",
            "quantity": "100",
            "close-price": "282.48",
            "average-open-price": "288.7",
            "average-daily-market-close-price": "282.48",
            "multiplier": 1,
            "cost-effect": "Debit",
        },
        {
            **base,
            "symbol": "SPY   261218C00600000",
            "instrument-type": "Equity Option",
            "underlying-symbol": "SPY",
            "quantity": 2,
            "close-price": "41.5",
            "average-open-price": "38.25",
            "multiplier": 100,
            "cost-effect": "Debit",
            "expires-at": "2026-12-18T21:15:00.000+00:00",
        },
    ]


def seed_transactions(n: str, count: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    d0 = date.today()
    for i in range(count):
        d = d0 - timedelta(days=i)
        out.append(
            {
                "id": 252640000 + i,
                "account-number": n,
                "symbol": "KBWD",
                "instrument-type": "Equity",
                "underlying-symbol": "KBWD",
                "transaction-type": "Money Movement",
                "transaction-sub-type": "Dividend",
                "description": f"sim dividend {i}",
                "executed-at": f"{d.isoformat()}T21:00:00.000+00:00",
                "transaction-date": d.isoformat(),
                "value": f"{1 + i}.25",
                "value-effect": "Credit",
                "net-value": f"{1 + i}.25",
                "net-value-effect": "Credit",
                "is-estimated-fee": True,
            }
        )
    return out


def seed_trading_status(n: str) -> dict[str, Any]:
    return {
        "account-number": n,
        "equities-margin-calculation-type": "Reg T",
        "fee-schedule-name": "default",
        "futures-margin-rate-multiplier": "0.0",
        "has-intraday-equities-margin": False,
        "id": 1,
        "is-aggregated-at-clearing": False,
        "is-closed": False,
        "is-closing-only": False,
        "is-cryptocurrency-enabled": True,
        "is-frozen": False,
        "is-full-equity-margin-required": False,
        "is-futures-closing-only": False,
        "is-futures-intra-day-enabled": True,
        "is-futures-enabled": True,
        "is-in-day-trade-equity-maintenance-call": False,
        "is-in-margin-call": False,
        "is-pattern-day-trader": False,
        "is-small-notional-futures-intra-day-enabled": False,
        "is-roll-the-day-forward-enabled": False,
        "are-far-otm-net-options-restricted": True,
        "options-level": "No Restrictions",
        "short-calls-enabled": True,
        "small-notional-futures-margin-rate-multiplier": "0.0",
        "is-equity-offering-enabled": False,
        "is-equity-offering-closing-only": False,
        "updated-at": iso(now()),
        "day-trade-count": 0,
    }


_CUSTOMER_ADDR = {
    "city": "Chicago",
    "country": "USA",
    "is-domestic": True,
    "is-foreign": False,
    "postal-code": "60606",
    "state-region": "IL",
    "street-one": "1 Sim Plaza",
}
CUSTOMER: dict[str, Any] = {
    "id": "me",
    "first-name": "Sim",
    "last-name": "Trader",
    "address": _CUSTOMER_ADDR,
    "mailing-address": _CUSTOMER_ADDR,
    "is-foreign": False,
    "usa-citizenship-type": "Citizen",
    "mobile-phone-number": "+1 555 0100",
    "birth-date": "1980-01-01",
    "email": "sim@example.invalid",
    "tax-number-type": "SSN",
    "subject-to-tax-withholding": False,
    "has-industry-affiliation": False,
    "has-listed-affiliation": False,
    "has-political-affiliation": False,
    "has-delayed-quotes": False,
    "has-pending-or-approved-application": False,
    "is-professional": False,
    "permitted-account-types": [],
    "created-at": "2024-01-02T14:30:00.000+00:00",
}

_TICKS = [{"value": "0.0001", "threshold": "1.0"}, {"value": "0.01"}]
_OPT_TICKS = [{"value": "0.01", "threshold": "3.0"}, {"value": "0.05"}]
EQUITIES: dict[str, dict[str, Any]] = {
    s: {
        "id": i,
        "symbol": s,
        "instrument-type": "Equity",
        "cusip": c,
        "short-description": d,
        "description": d,
        "is-index": idx,
        "listed-market": "XNAS",
        "lendability": "Easy To Borrow",
        "borrow-rate": "0.0",
        "market-time-instrument-collection": "Equity",
        "is-closing-only": False,
        "is-options-closing-only": False,
        "active": True,
        "is-fractional-quantity-eligible": not idx,
        "is-illiquid": False,
        "is-etf": etf,
        "streamer-symbol": s,
        "tick-sizes": _TICKS,
        "option-tick-sizes": _OPT_TICKS,
    }
    for i, (s, c, d, idx, etf) in enumerate(
        [
            ("AAPL", "037833100", "APPLE INC", False, False),
            ("SPY", "78462F103", "SPDR S&P 500 ETF TRUST", False, True),
            ("SPX", "648815108", "S & P 500 INDEX", True, False),
            ("META", "30303M102", "META PLATFORMS INC", False, False),
            ("TSLA", "88160R101", "TESLA INC", False, False),
        ],
        start=700,
    )
}


def _occ(root: str, exp: date, cp: str, strike: Decimal) -> str:
    return f"{root:<6}{exp:%y%m%d}{cp}{int(strike * 1000):08d}"


def _streamer_opt(root: str, exp: date, cp: str, strike: Decimal) -> str:
    k = format(strike.normalize(), "f")
    return f".{root}{exp:%y%m%d}{cp}{k}"


def _expirations() -> list[date]:
    d = date.today()
    out: list[date] = []
    while len(out) < 3:
        d += timedelta(days=1)
        if d.weekday() == 4:
            out.append(d)
    return out


def build_chain(root: str, center: int) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    exps = []
    options: dict[str, dict[str, Any]] = {}
    for exp in _expirations():
        strikes = []
        for k in range(center - 10, center + 11, 5):
            sk = Decimal(k)
            row: dict[str, Any] = {"strike-price": f"{k}.0"}
            for cp, name in (("C", "call"), ("P", "put")):
                occ = _occ(root, exp, cp, sk)
                st = _streamer_opt(root, exp, cp, sk)
                row[name] = occ
                row[f"{name}-streamer-symbol"] = st
                options[occ] = {
                    "symbol": occ,
                    "instrument-type": "Equity Option",
                    "active": True,
                    "strike-price": f"{k}.0",
                    "root-symbol": root,
                    "underlying-symbol": root,
                    "expiration-date": exp.isoformat(),
                    "exercise-style": "American",
                    "shares-per-contract": 100,
                    "option-type": cp,
                    "option-chain-type": "Standard",
                    "expiration-type": "Weekly",
                    "settlement-type": "PM",
                    "stops-trading-at": f"{exp.isoformat()}T20:15:00.000+00:00",
                    "market-time-instrument-collection": "Equity Option",
                    "days-to-expiration": (exp - date.today()).days,
                    "expires-at": f"{exp.isoformat()}T20:15:00.000+00:00",
                    "is-closing-only": False,
                    "streamer-symbol": st,
                }
            strikes.append(row)
        exps.append(
            {
                "expiration-type": "Weekly",
                "expiration-date": exp.isoformat(),
                "days-to-expiration": (exp - date.today()).days,
                "settlement-type": "PM",
                "strikes": strikes,
            }
        )
    chain = {
        "underlying-symbol": root,
        "root-symbol": root,
        "option-chain-type": "Standard",
        "shares-per-contract": 100,
        "tick-sizes": _OPT_TICKS,
        "deliverables": [],
        "expirations": exps,
    }
    return chain, options


FUTURES: dict[str, dict[str, Any]] = {
    "/ESZ6": {
        "symbol": "/ESZ6",
        "product-code": "ES",
        "contract-size": "50.0",
        "tick-size": "0.25",
        "notional-multiplier": "50.0",
        "main-fraction": "0.0",
        "sub-fraction": "0.0",
        "display-factor": "0.01",
        "last-trade-date": "2026-12-18",
        "expiration-date": "2026-12-18",
        "closing-only-date": "2026-12-18",
        "active": True,
        "active-month": True,
        "next-active-month": False,
        "is-closing-only": False,
        "stops-trading-at": "2026-12-18T14:30:00.000+00:00",
        "expires-at": "2026-12-18T14:30:00.000+00:00",
        "product-group": "CME_ES",
        "exchange": "CME",
        "roll-target-symbol": "/ESH7",
        "streamer-exchange-code": "XCME",
        "streamer-symbol": "/ESZ26:XCME",
        "back-month-first-calendar-symbol": True,
        "is-tradeable": True,
        "tick-sizes": [{"value": "0.25"}],
        "option-tick-sizes": [{"value": "0.05", "threshold": "5.0"}, {"value": "0.25"}],
    },
}


def _future_option(strike: int, cp: str) -> dict[str, Any]:
    sym = f"./ESZ6 E4AZ6 261218{cp}{strike}"
    return {
        "symbol": sym,
        "underlying-symbol": "/ESZ6",
        "product-code": "ES",
        "expiration-date": "2026-12-18",
        "root-symbol": "/ES",
        "option-root-symbol": "E4A",
        "strike-price": f"{strike}.0",
        "exchange": "CME",
        "exchange-symbol": f"E4AZ6 {cp}{strike}",
        "streamer-symbol": f"./E4AZ26{cp}{strike}:XCME",
        "option-type": cp,
        "exercise-style": "American",
        "is-vanilla": True,
        "is-primary-deliverable": True,
        "future-price-ratio": "1.0",
        "multiplier": "1.0",
        "underlying-count": "1.0",
        "is-confirmed": True,
        "notional-value": "0.5",
        "display-factor": "0.01",
        "settlement-type": "Future",
        "strike-factor": "1.0",
        "maturity-date": "2026-12-18",
        "is-exercisable-weekly": True,
        "last-trade-time": "0",
        "days-to-expiration": 30,
        "is-closing-only": False,
        "active": True,
        "stops-trading-at": "2026-12-18T20:00:00.000+00:00",
        "expires-at": "2026-12-18T20:00:00.000+00:00",
        "security-exchange": "XCME",
        "sx-id": "0",
    }


#: the /ES future options (one expiration, strikes 5900..6100), the SDK's required fields included
FUTURE_OPTIONS: dict[str, dict[str, Any]] = {
    o["symbol"]: o for k in range(5900, 6101, 50) for o in (_future_option(k, "C"),
                                                            _future_option(k, "P"))
}  # fmt: skip


def future_option_chain_nested(code: str) -> dict[str, Any] | None:
    """``/futures-option-chains/{code}/nested``: the futures and the option chains on them."""
    futs = [f for f in FUTURES.values() if f["product-code"] == code]
    opts = [o for o in FUTURE_OPTIONS.values() if o["product-code"] == code]
    if not futs:
        return None
    strikes: dict[str, dict[str, Any]] = {}
    for o in opts:
        row = strikes.setdefault(o["strike-price"], {"strike-price": o["strike-price"]})
        name = "call" if o["option-type"] == "C" else "put"
        row[name] = o["symbol"]
        row[f"{name}-streamer-symbol"] = o["streamer-symbol"]
    o0 = opts[0] if opts else None
    expirations = []
    if o0 is not None:
        expirations.append({
            "root-symbol": o0["root-symbol"],
            "notional-value": o0["notional-value"],
            "underlying-symbol": o0["underlying-symbol"],
            "strike-factor": o0["strike-factor"],
            "days-to-expiration": o0["days-to-expiration"],
            "option-root-symbol": o0["option-root-symbol"],
            "expiration-date": o0["expiration-date"],
            "expires-at": o0["expires-at"],
            "asset": code,
            "expiration-type": "Regular",
            "display-factor": o0["display-factor"],
            "option-contract-symbol": "E4AZ6",
            "stops-trading-at": o0["stops-trading-at"],
            "settlement-type": o0["settlement-type"],
            "strikes": [strikes[k] for k in sorted(strikes, key=float)],
            "tick-sizes": [{"value": "0.05", "threshold": "5.0"}, {"value": "0.25"}],
        })  # fmt: skip
    return {
        "futures": [
            {
                "root-symbol": "/" + code,
                "days-to-expiration": 30,
                "expiration-date": f["expiration-date"],
                "expires-at": f["expires-at"],
                "next-active-month": f["next-active-month"],
                "symbol": f["symbol"],
                "active-month": f["active-month"],
                "stops-trading-at": f["stops-trading-at"],
            }
            for f in futs
        ],
        "option-chains": [
            {
                "underlying-symbol": "/" + code,
                "root-symbol": "/" + code,
                "exercise-style": "American",
                "expirations": expirations,
            }
        ],
    }


CRYPTOS: dict[str, dict[str, Any]] = {
    s: {
        "id": i,
        "symbol": s,
        "instrument-type": "Cryptocurrency",
        "short-description": d,
        "description": f"{d} to USD",
        "is-closing-only": False,
        "active": True,
        "tick-size": "0.01",
        "streamer-symbol": f"{s}:CXTALP",
        "destination-venue-symbols": [
            {
                "id": i,
                "symbol": s.split("/")[0],
                "destination-venue": "CITADEL_CRYPTOCURRENCY",
                "max-quantity-precision": 8,
                "max-price-precision": 8,
                "routable": True,
            }
        ],
    }
    for i, (s, d) in enumerate([("BTC/USD", "Bitcoin"), ("ETH/USD", "Ethereum")], start=1)
}
#: ``/instruments/quantity-decimal-precisions`` (the documented example, one row per kind)
QUANTITY_PRECISIONS: list[dict[str, Any]] = [
    {"instrument-type": "Cryptocurrency", "symbol": "BTC/USD", "value": 8,
     "minimum-increment-precision": 8},
    {"instrument-type": "Cryptocurrency", "symbol": "ETH/USD", "value": 8,
     "minimum-increment-precision": 8},
    {"instrument-type": "Equity", "value": 5, "minimum-increment-precision": 0},
]  # fmt: skip
