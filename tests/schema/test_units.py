from collections import Counter

from schema.fields import UNIT_CHECKS, UNIT_REQUIRED, check_payload
from schema.units import all_provinces, province_units


def test_can_tho_has_103_commune_level_units():
    units = province_units(92)
    kinds = Counter(u.kind for u in units)
    assert kinds["commune"] + kinds["ward"] == 103
    assert (kinds["commune"], kinds["ward"]) == (72, 31)
    assert all(u.province_code == "92" for u in units)


def test_the_province_comes_first_with_its_real_code():
    city = province_units("92")[0]
    assert (city.code, city.name, city.kind, city.parent_code) == (
        "92",
        "Thành phố Cần Thơ",
        "province",
        None,
    )


def test_ward_codes_are_the_real_five_digit_codes():
    units = {u.code: u for u in province_units(92)}
    ninh_kieu = units["31135"]
    assert ninh_kieu.name == "Phường Ninh Kiều"
    assert ninh_kieu.division_type == "phường"
    assert ninh_kieu.parent_code == "92"
    communes = [u for u in units.values() if u.kind in ("commune", "ward")]
    assert all(len(u.code) == 5 and u.code.isdigit() for u in communes)
    assert province_units(1)[1].code == "00004"  # Hà Nội's Ba Đình keeps its leading zeros


def test_departments_and_the_service_centre_live_in_their_own_namespace():
    units = province_units(92)
    bodies = [u for u in units if u.kind in ("department", "centre")]
    codes = {u.code for u in bodies}
    assert {"92-SO-TP", "92-SO-XD", "92-SO-NNMT", "92-SO-TC", "92-TTPVHCC"} <= codes
    assert all(code.startswith("92-") and not code.isdigit() for code in codes)
    assert [u.kind for u in bodies].count("centre") == 1
    assert len({u.code for u in units}) == len(units)


def test_34_provinces():
    provinces = all_provinces()
    assert len(provinces) == 34
    assert len({p.code for p in provinces}) == 34
    assert "92" in {p.code for p in provinces}
    assert all(p.kind == "province" for p in provinces)


def test_other_provinces_have_no_invented_departments():
    assert all(u.code.isdigit() for u in province_units(79))


def test_unit_payloads_are_valid_upserts():
    for unit in province_units(92):
        assert check_payload(unit.as_payload(), UNIT_CHECKS, UNIT_REQUIRED) is None
