"""Analysis: normalisation, segmentation with the domain dictionary, bigrams and identifiers."""
from __future__ import annotations

from portal.search.analysis import (Analyzer, DEFAULT_DICTIONARY, get_analyzer, ident_parts, identifier_grams,
                                    load_dictionary, normalize, query_runs, short_text_terms)


def test_domain_compounds_stay_whole_and_their_parts_are_indexed_too():
    analyzer = get_analyzer()
    assert analyzer.query_words("农村信用社借款合同编号") == ["农村信用社", "借款合同", "编号"]
    assert "贷后检查" in analyzer.query_words("开展贷后检查工作")
    assert "五级分类" in analyzer.query_words("按五级分类认定")
    assert "他项权证" in analyzer.query_words("收回他项权证")
    words = analyzer.analyze(normalize("贷后检查发现借款人挪用资金")).words
    # The compound and its components are all words of the text (ranking finds 贷后 alone).
    assert {"贷后检查", "贷后", "检查"} <= set(words)


def test_without_the_dictionary_the_segmenter_splits_domain_terms():
    plain = Analyzer([])
    assert plain.query_words("贷后检查") != ["贷后检查"]


def test_every_compound_of_the_shipped_dictionary_comes_with_its_parts():
    words = {w for w, _f in load_dictionary([DEFAULT_DICTIONARY])}
    for compound in ("贷后检查", "五级分类", "信贷档案", "借款合同", "他项权证", "农户联保", "贷前调查报告", "结清证明"):
        assert compound in words
    for part in ("贷后", "检查", "五级", "分类", "信贷", "档案", "借款", "合同", "他项", "权证", "农户", "联保"):
        assert part in words


def test_a_union_extends_the_dictionary_with_its_own_file(tmp_path):
    extra = tmp_path / "union.txt"
    extra.write_text("# 本联社用语\n惠农快贷\n", encoding="utf-8")
    assert get_analyzer().query_words("惠农快贷") != ["惠农快贷"]
    assert get_analyzer(str(extra)).query_words("申请惠农快贷") == ["申请", "惠农快贷"]


def test_bigrams_cover_every_chinese_run_at_character_positions():
    text = normalize("贷后 检查，挪用")      # the space between Chinese characters goes (OCR, line breaks)
    assert text == "贷后检查,挪用"
    bigrams = get_analyzer().analyze(text).bigrams
    assert bigrams == {"贷后": [0], "后检": [1], "检查": [2], "挪用": [5]}


def test_normalisation_folds_full_width_letters_and_digits():
    assert normalize("ＸＹ２０２４－００１") == "XY2024-001"
    assert query_runs("借款合同ＸＹ２０２４") == [("cjk", "借款合同"), ("ident", "XY2024")]


def test_identifiers_whole_and_by_parts():
    parts = ident_parts("XY2024-001")
    assert parts[0] == "xy2024-001" and set(parts) == {"xy2024-001", "xy2024", "001", "xy", "2024"}
    assert "hn0101" in ident_parts("J012-XD·2024-D30-HN0101-0001")
    grams = identifier_grams(["AB-12", "CD"])
    assert grams == {"ab-": [0], "b-1": [1], "-12": [2]}   # "CD" is shorter than a trigram


def test_short_texts_keep_single_characters_and_identifiers():
    assert short_text_terms(normalize("借据")) == {"借据": [0]}
    assert short_text_terms("王") == {"王": [0]}
    assert short_text_terms("scan-01.pdf") == {"scan-01.pdf": [0], "scan": [0], "01": [0], "pdf": [0]}
