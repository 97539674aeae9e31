"""Topics: content words shared by the titles of several SciFact abstracts, with the abstracts on each topic.

A topic is a title word (4+ letters, singular and plural merged) that names a subject: generic research words
("analysis", "induces", "patients", ...) and the attributes' own words ("mice", "trial", "review", ...) are not
topics. Its **on-topic** documents are those whose title contains it; its **mentions** are those whose title or
abstract contains it (everything else is safely off topic, so hard negatives come from there). Topics whose
on-topic sets overlap heavily (e.g. "helicobacter" and "pylori") are merged into the larger one.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from qpr_pyserini.io.corpus import Document

MIN_TITLES, MAX_TITLES = 10, 200  # on-topic documents per topic
MAX_OVERLAP = 0.5  # Jaccard overlap of on-topic sets above which the smaller topic is dropped
_WORD = re.compile(r"[a-z][a-z0-9]*")

# Title words that do not name a subject on their own (checked after singular/plural folding).
_GENERIC = """
access across action activate activated activating active activity actually acute adult advanced advance adverse
affect aged alpha alteration alternative american anti approach assay assembly assessment association basal
basic basis beta biological biology break burden capacity care case cause cellular central change characteristic
characterization chemical chronic class classification clearance cluster coding cold combination combined common
community comparative comparison complex complication component concentration condition confer consequence
conserved consumption containing contribute contribution controlled control core correlate cost country coupled
coupling criteria critical cross crystal culture cultured current cycle cyclic daily damage data database death
defective defect deficiency deficient defined degradation deletion delivery density dependence depletion derived
design detection determine developing developmental difference different differential dimensional direct
discovery disorder disruption distinct distribution diverse diversity division domain dose double down driven
drive dual dynamic dynamics dysfunction early effective effectiveness effector efficacy efficient elimination
emerging encoded endogenous enhanced enhance estimate evaluation event evolution exchange expansion experience
experimental exposure expressed failure familial family fate feature first flow fluid follow following formation
four free frequency functional future gain gamma general generation global group guideline have head healthy
helper heterogeneity highly history homeostasis host human humans impact impaired impair implication improve
improved incidence index individual induce inducible inducing induction information influence inhibiting
inhibition inhibitor inhibit initiation insight instability integrated integration integrity interaction
international intervention involved involvement isolated isolation kinetics knowledge landscape large late latent
life light like line lineage link live living local localization localized long loss maintenance major male
management mapping marker mass maturation mechanical mediate medical method middle modeling modulate modulation
molecular molecule monitoring multi multiple mutant natural negative network normal number onset open organ
organization origin outcome partial pathogenesis pathway patient pattern people performance perspective
pharmacological phase phenotype physical policy poor population positive post potent practice precursor predict
prediction predictor presentation pressure prevalence prevent prevention primary processing production profile
profiling program progression promote promoting property protection protect quality quantitative rapid reactive
recognition recovery recruitment reduce region regulate regulated regulating regulator regulatory related
relation relationship release renewal repair repeat replacement report repression requirement require research
resistant resolution result retrospective reveal revealed reverse role safety sample scale screening second
secondary selection selective self sensing sensitive sensitivity sensor sequence severe short signal signalling
single site size small solid soluble spatial species specificity stability stage state status strategy stress
structural structure subset subunit suppress suppression surface survey susceptibility symptom synthesis system
systematic target targeted targeting temporal tension term terminal testing therapeutic therapy three time
tissue tolerance toxicity trafficking training transfer transition translation transport treated trend type
undergoing united uptake variant variation vector versus visual visualization volume whole wide year young
older elderly adults animal vitro vivo trial placebo prospective meta sectional childhood child children infant
infancy adolescent neonatal cohort longitudinal randomized randomised review mouse mice murine rat rodent
against agent alter ameliorate among application area attenuate benefit bind both center challenge content
decision decrease deficit define determinant element enable essential evidence facilitate field finding force form
generate guide identification identifie identify increase increased independent indicator into lead level limit loop
maintain measurement mediator member modification modulator more motif need novel other over potential provide rate
required service signature source stimulate strain subject support suppresse technique test that their tool trigger
unit using value variable what within without transgenic primate activation after associated based between
binding clinical dependent development during effect factor function high induced mechanism mediated model
regulation response risk signaling specific through treatment health
""".split()


@dataclass(frozen=True)
class SubjectTopic:
    """A topic word, its on-topic documents (title) and the documents that mention it anywhere."""

    word: str
    on_topic: frozenset[str]
    mentions: frozenset[str]


def fold(word: str) -> str:
    """A word's singular-ish key, so that "antibody" and "antibodies" are one topic."""
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


GENERIC = frozenset(fold(word) for word in _GENERIC)


def find_topics(docs: Iterable[Document]) -> list[SubjectTopic]:
    """The topics of a corpus, sorted by word (see the module docstring for the rules)."""
    title_docs: dict[str, set[str]] = defaultdict(set)
    mention_docs: dict[str, set[str]] = defaultdict(set)
    surface: dict[str, Counter[str]] = defaultdict(Counter)
    for doc in docs:
        for word in set(_WORD.findall(doc.title.lower())):
            title_docs[fold(word)].add(doc.docid)
            surface[fold(word)][word] += 1
        for word in set(_WORD.findall(doc.joined().lower())):
            mention_docs[fold(word)].add(doc.docid)
    candidates = [
        key
        for key, ids in title_docs.items()
        if MIN_TITLES <= len(ids) <= MAX_TITLES and len(key) >= 4 and key.isalpha() and key not in GENERIC
    ]
    kept: list[SubjectTopic] = []
    for key in sorted(candidates, key=lambda k: (-len(title_docs[k]), k)):
        ids = frozenset(title_docs[key])
        if all(len(ids & t.on_topic) / len(ids | t.on_topic) <= MAX_OVERLAP for t in kept):
            word = min(surface[key], key=lambda w: (-surface[key][w], w))
            kept.append(SubjectTopic(word, ids, frozenset(mention_docs[key])))
    return sorted(kept, key=lambda t: t.word)
