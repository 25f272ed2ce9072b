"""AppTest: the Paper experiments page shows the shipped results with the claims beside them, switches
experiments, says how to produce missing results, and reruns one cell in the background."""

from apptest_helpers import figure_titled, figures, open_page, rerun_until

from drnn_demo.claims import claims

PAGE = "views/paper_experiments.py"


def test_shipped_results_are_plotted_with_their_bound_and_the_claims():
    at = open_page(PAGE)
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    for claim in claims({}):
        assert claim["claim"] in text  # every claim of the abstract has a row
    reversal = figure_titled(at, "Sequence reversal: test accuracy vs delay")
    names = [t["name"] for t in reversal["data"]]
    assert "theoretical best" in names and "delayed RNN (mean, 95 % interval)" in names
    assert any(n.startswith("bidirectional") for n in names)
    table = at.dataframe[0].value
    assert list(dict.fromkeys(table["cell"]))[:2] == ["delayed_d0", "delayed_d3"]
    assert at.segmented_control(key="paper_budget").value == "medium"  # all five are shipped at medium


def test_switching_experiment_redraws_and_a_missing_result_says_how_to_make_it(tmp_path, monkeypatch):
    at = open_page(PAGE, query={"paper_exp": "Sine filtering"})
    assert not at.exception
    assert figure_titled(at, "Sine filtering: test MSE vs delay")
    monkeypatch.setenv("DRNN_RESULTS_DIR", str(tmp_path))
    at.run()
    assert not at.exception and not figures(at)
    assert any("reproduce sine --budget small" in i.value for i in at.info)
    assert any("not measured yet" in m.value for m in at.markdown)
    (tmp_path / "sine_small.json").write_text("{broken")
    at.run()
    assert not at.exception and any("cannot be read" in e.value for e in at.error)


def test_rerunning_a_cell_in_the_background_records_it(tmp_path, monkeypatch):
    monkeypatch.setenv("DRNN_RESULTS_DIR", str(tmp_path))  # the worker inherits it: shipped results stay as they are
    at = open_page(PAGE, query={"paper_exp": "Runtime (inference)"})
    assert any("No results yet" in i.value for i in at.info)
    at.selectbox(key="paper_cell").set_value("delayed_d0").run()
    next(b for b in at.button if b.label == "Rerun in the background").click().run()
    assert not at.exception
    rerun_until(at, "paper_done")
    assert not at.exception
    assert any("finished" in s.value and "delayed_d0" in s.value for s in at.success)
    assert list(at.dataframe[0].value["cell"]) == ["delayed_d0"]
    assert (tmp_path / "runtime_small.json").exists()
