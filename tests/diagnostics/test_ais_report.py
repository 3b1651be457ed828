"""The AIS/BDMC entries of eval.json, their verdict against L_S and their table rows."""

import math

import pytest
import torch

from pyro_vae.diagnostics.ais import AISResult
from pyro_vae.diagnostics.ais_report import ais_entry, ais_verdict, table_lines, table_rows


def result(log_likelihood):
    ll = torch.tensor(log_likelihood, dtype=torch.float64)
    return AISResult(ll, ll.expand(4, -1), torch.full_like(ll, 0.6), torch.full((1, ll.numel()), 0.1),
                     {"num_steps": 100, "num_chains": 4, "leapfrog_steps": 10, "schedule": "sigmoid",
                      "init": "guide"}, 2.0)


def report_with(ais_values, iwae_values, bdmc=None):
    report = {"ais": ais_entry(result(ais_values), torch.tensor(iwae_values, dtype=torch.float64), 5000),
              "verdict": {"level": "lower-bound-only", "message": "..."}}
    if bdmc:
        report["bdmc"] = bdmc
    return report


def test_entry_pairs_ais_with_l_s_on_the_same_images():
    entry = report_with([-100.0, -90.0, -80.0], [-101.0, -92.0, -80.5])["ais"]
    assert entry["understatement"] == pytest.approx(7 / 6)  # mean of 1, 2, 0.5
    assert entry["understatement_stderr"] == pytest.approx(torch.tensor([1.0, 2.0, 0.5]).std().item() / math.sqrt(3))
    assert entry["iwae_log_likelihood"] == pytest.approx(-273.5 / 3) and entry["log_likelihood"] == pytest.approx(-90.0)
    assert entry["iwae_num_samples"] == 5000 and entry["num_images"] == 3 and entry["acceptance_mean"] == 0.6


@pytest.mark.parametrize("ais,level,phrase", [
    ([-100.0, -90.0, -80.0], "understated", "L_5000 understates log p(x) by at least"),
    ([-101.1, -91.9, -80.5], "agree", "agree within their errors"),
    ([-103.0, -95.0, -84.0], "ais-not-converged", "has not converged"),
])
def test_verdict_compares_ais_with_l_s(ais, level, phrase):
    verdict = ais_verdict(report_with(ais, [-101.0, -92.0, -80.5]))
    assert verdict["level"] == level and phrase in verdict["message"]


def test_verdict_and_table_with_bdmc():
    bdmc = {"num_points": 20, "num_steps": 100, "lower": -120.0, "upper": -119.5, "gap_mean": 0.5, "gap_max": 2.0,
            "lower_stderr": 3.0, "upper_stderr": 3.0, "gap_stderr": 0.1}
    report = report_with([-100.0, -90.0, -80.0], [-101.0, -92.0, -80.5], bdmc)
    report["verdict"]["ais"] = ais_verdict(report)
    assert "BDMC on 20 simulated points" in report["verdict"]["ais"]["message"]
    assert "within about 0.50 nats" in report["verdict"]["ais"]["message"]
    names = [name for name, _, _ in table_rows(report)]
    assert names[0].startswith("AIS, T=100") and "BDMC gap upper - lower" in names
    assert any(line.startswith("AIS verdict: understated") for line in table_lines(report))
    only_bdmc = {"bdmc": bdmc}
    assert ais_verdict(only_bdmc)["level"] == "bdmc-only"
    assert table_rows({}) == [] and table_lines({}) == []
