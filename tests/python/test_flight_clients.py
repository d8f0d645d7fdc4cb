"""Standard clients outside Rust: ADBC Flight SQL and pyarrow.flight over mTLS."""

import datetime
import re
from pathlib import Path

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
import pyarrow.flight as flight
import pytest


def _caller(info, name):
    return next(c for c in info["callers"] if c["name"] == name)


def _adbc(uri, info, cert, key, purpose=None):
    options = {
        adbc_driver_flightsql.DatabaseOptions.TLS_ROOT_CERTS.value: Path(info["ca_file"]).read_text(),
        adbc_driver_flightsql.DatabaseOptions.MTLS_CERT_CHAIN.value: Path(cert).read_text(),
        adbc_driver_flightsql.DatabaseOptions.MTLS_PRIVATE_KEY.value: Path(key).read_text(),
        adbc_driver_flightsql.DatabaseOptions.TLS_OVERRIDE_HOSTNAME.value: info["server_name"],
    }
    if purpose:
        # Every data request names its purpose in a call header.
        options[adbc_driver_flightsql.DatabaseOptions.RPC_CALL_HEADER_PREFIX.value + "x-creditgate-purpose"] = purpose
    return flightsql.connect(uri, db_kwargs=options)


def _statement_query_command(sql: str) -> bytes:
    """A Flight SQL CommandStatementQuery wrapped in protobuf Any, encoded by hand."""

    def field(number: int, payload: bytes) -> bytes:
        key = bytes([(number << 3) | 2])
        length, n = b"", len(payload)
        while True:
            byte = n & 0x7F
            n >>= 7
            length += bytes([byte | (0x80 if n else 0)])
            if not n:
                break
        return key + length + payload

    inner = field(1, sql.encode("utf-8"))
    type_url = b"type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery"
    return field(1, type_url) + field(2, inner)


def test_adbc_queries_the_gateway_with_a_client_certificate(federation):
    samr = _caller(federation, "samr")
    with _adbc(federation["flight_sql"], federation, samr["cert"], samr["key"], "supervision") as conn:
        cur = conn.cursor()
        cur.execute(
            "SELECT s.shop_id, b.listing_department FROM platform_a.shops s "
            "JOIN credit_platform.black_list b ON s.owner_credit_code = b.credit_code ORDER BY s.shop_id"
        )
        table = cur.fetch_arrow_table()
        assert table.num_rows >= 1
        assert table.column_names == ["shop_id", "listing_department"]
        assert all(v.startswith("PA") for v in table.column("shop_id").to_pylist())

        cur.execute("SELECT credit_code, name FROM market.enterprises ORDER BY credit_code LIMIT 5")
        rows = cur.fetchall()
        assert len(rows) == 5
        assert all(len(code) == 18 for code, _ in rows)

        objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
        tables = {
            (schema["db_schema_name"], t["table_name"])
            for catalog in objects
            for schema in catalog["catalog_db_schemas"] or []
            for t in schema["db_schema_tables"] or []
        }
        assert ("market", "enterprises") in tables
        assert ("court", "dishonest_debtors") in tables
        cur.close()


def test_a_known_caller_without_a_purpose_is_refused(federation):
    samr = _caller(federation, "samr")
    with pytest.raises(Exception) as refused:
        with _adbc(federation["flight_sql"], federation, samr["cert"], samr["key"]) as conn:
            cur = conn.cursor()
            cur.execute("SELECT name FROM market.enterprises LIMIT 1")
            cur.fetchall()
    assert "a purpose is required" in str(refused.value)


def test_an_unknown_caller_is_refused(federation):
    stranger = _caller(federation, "stranger")
    with pytest.raises(Exception) as refused:
        with _adbc(federation["flight_sql"], federation, stranger["cert"], stranger["key"]) as conn:
            cur = conn.cursor()
            cur.execute("SELECT 1")
            cur.fetchall()
    assert "not a known caller" in str(refused.value)


def test_pyarrow_flight_client_with_mtls(federation):
    agency = _caller(federation, "credit_agency")
    client = flight.FlightClient(
        federation["flight_sql"],
        tls_root_certs=Path(federation["ca_file"]).read_bytes(),
        cert_chain=Path(agency["cert"]).read_bytes(),
        private_key=Path(agency["key"]).read_bytes(),
        override_hostname=federation["server_name"],
    )
    command = _statement_query_command("SELECT rating, COUNT(*) AS n FROM tax.credit_ratings GROUP BY rating ORDER BY rating")
    options = flight.FlightCallOptions(headers=[(b"x-creditgate-purpose", b"credit_report")])
    info = client.get_flight_info(flight.FlightDescriptor.for_command(command), options)
    assert info.schema.names == ["rating", "n"]
    table = client.do_get(info.endpoints[0].ticket, options).read_all()
    assert sorted(table.column("rating").to_pylist()) == table.column("rating").to_pylist()
    assert set(table.column("rating").to_pylist()) <= {"A", "B", "M", "C", "D"}
    assert sum(table.column("n").to_pylist()) > 0


def test_adbc_can_use_a_connector_directly_with_the_gateway_identity(federation):
    certs = Path(federation["_dir"]) / "certs"
    market = next(c for c in federation["connectors"] if c["name"] == "market")
    with _adbc(market["flight_sql"], federation, certs / "gateway-client.pem", certs / "gateway-client.key") as conn:
        cur = conn.cursor()
        cur.execute("SELECT credit_code FROM enterprises LIMIT 3")
        assert len(cur.fetchall()) == 3
        cur.close()
    samr = _caller(federation, "samr")
    with pytest.raises(Exception) as refused:
        with _adbc(market["flight_sql"], federation, samr["cert"], samr["key"]) as conn:
            cur = conn.cursor()
            cur.execute("SELECT credit_code FROM enterprises LIMIT 3")
            cur.fetchall()
    assert "not allowed" in str(refused.value)


def _codes(cur, n):
    cur.execute(f"SELECT credit_code FROM market.enterprises ORDER BY credit_code LIMIT {n}")
    return [row[0] for row in cur.fetchall()]


def test_adbc_binds_parameters_as_values(federation):
    samr = _caller(federation, "samr")
    with _adbc(federation["flight_sql"], federation, samr["cert"], samr["key"], "supervision") as conn:
        cur = conn.cursor()
        first, second = _codes(cur, 2)
        query = "SELECT credit_code, name FROM market.enterprises WHERE credit_code = ?"

        cur.execute(query, (first,))
        bound = cur.fetchall()
        cur.execute(f"SELECT credit_code, name FROM market.enterprises WHERE credit_code = '{first}'")
        assert bound == cur.fetchall()
        assert len(bound) == 1 and bound[0][0] == first

        # NULL and injection-shaped values match nothing: they are values, not SQL.
        for value in (None, "' OR '1'='1", "x' OR 1=1 --", "'; DROP TABLE market.enterprises; --"):
            cur.execute(query, (value,))
            assert cur.fetchall() == [], value

        # Many rows in one execution: every row's results.
        cur.execute(query, pa.table({"0": [first, second, "no such code"]}))
        assert sorted(row[0] for row in cur.fetchall()) == sorted([first, second])

        # executemany runs the statement once per row and returns no result set.
        cur.executemany(query, [(first,), (second,), ("no such code",)])
        assert cur.rowcount == 2

        # The parameter types the datasets use: text, number, date, boolean.
        cur.execute(
            "SELECT COUNT(*) FROM market.enterprises "
            "WHERE registered_capital >= ? AND established_date >= ? AND is_individual = ? AND status <> ?",
            (0, datetime.date(1900, 1, 1), False, "no such status"),
        )
        typed = cur.fetchall()[0][0]
        cur.execute(
            "SELECT COUNT(*) FROM market.enterprises WHERE registered_capital >= 0 "
            "AND established_date >= DATE '1900-01-01' AND is_individual = false AND status <> 'no such status'"
        )
        assert typed == cur.fetchall()[0][0] and typed > 0
        cur.close()


def test_adbc_parameter_against_a_masked_column_sees_the_masked_value(federation):
    samr = _caller(federation, "samr")
    with _adbc(federation["flight_sql"], federation, samr["cert"], samr["key"], "supervision") as conn:
        cur = conn.cursor()
        cur.execute("SELECT phone FROM market.enterprises WHERE phone IS NOT NULL ORDER BY credit_code LIMIT 1")
        (masked,) = cur.fetchone()
        # samr's policy shows mobiles by carrier prefix only (mobile_prefix: 3 digits, 8 stars)
        assert re.fullmatch(r"1[3-9][0-9]\*{8}", masked), masked
        cur.execute("SELECT credit_code FROM market.enterprises WHERE phone = ? ORDER BY credit_code", (masked,))
        bound = cur.fetchall()
        cur.execute(f"SELECT credit_code FROM market.enterprises WHERE phone = '{masked}' ORDER BY credit_code")
        assert bound == cur.fetchall() and len(bound) >= 1
        cur.close()


EXPRESSIONS = [
    "SELECT upper('abc')",
    "SELECT current_date",
    "SELECT now()",
    "SELECT 1, 'x', NULL, 1.5, true",
    "SELECT concat('a', 'b'), length('abc'), abs(-1), coalesce(NULL, 2)",
    "SELECT CAST('2024-01-02' AS DATE), to_timestamp('2024-01-02T00:00:00')",
    "SELECT date_trunc('month', current_date), extract(year FROM current_date)",
    "SELECT CASE WHEN 1 > 0 THEN 'yes' END, nullif(1, 1), round(2.5)",
    "SELECT upper(name), COUNT(*) FROM market.enterprises GROUP BY upper(name) ORDER BY 2 DESC LIMIT 3",
    "SELECT credit_code, 'constant' AS c, 42 AS n FROM market.enterprises LIMIT 2",
]


@pytest.mark.parametrize("sql", EXPRESSIONS)
def test_adbc_reads_one_schema_per_statement(federation, sql):
    samr = _caller(federation, "samr")
    with _adbc(federation["flight_sql"], federation, samr["cert"], samr["key"], "supervision") as conn:
        cur = conn.cursor()
        cur.execute(sql)
        table = cur.fetch_arrow_table()
        assert table.num_rows >= 1
        cur.close()
