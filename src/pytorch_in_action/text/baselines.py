"""Two baselines every text-classification score stands beside, fitted on the training split and scored on
the evaluation split the model is scored on.

- majority class: always predict the most frequent training label (`DummyClassifier("most_frequent")`; a tie
  goes to the smaller label). Its accuracy is the rate a model must beat to have learnt anything.
- character n-gram TF-IDF + logistic regression: 1- to 3-character n-grams seen in at least two training texts,
  sublinear term frequencies, L2-regularised logistic regression (C = 4). No tokenizer, no pretraining, seconds
  on a CPU, and on short Chinese reviews a strong model (see docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Sequence

from pytorch_in_action.train.metrics import classification_metrics

TFIDF_NGRAMS = (1, 3)
TFIDF_MIN_DF = 2
LOGREG_C = 4.0


def majority_baseline(train_labels: Sequence[int], eval_labels: Sequence[int], num_labels: int,
                      prefix: str = "val_") -> dict[str, float]:
    """`{prefix}majority_accuracy`: accuracy on `eval_labels` of always answering the majority training label."""
    from sklearn.dummy import DummyClassifier

    clf = DummyClassifier(strategy="most_frequent").fit([[0]] * len(train_labels), list(train_labels))
    preds = clf.predict([[0]] * len(eval_labels)).tolist()
    return {f"{prefix}majority_accuracy": classification_metrics(eval_labels, preds, num_labels, "")["accuracy"]}


def char_tfidf_baseline(train_texts: Sequence[str], train_labels: Sequence[int], eval_texts: Sequence[str],
                        eval_labels: Sequence[int], num_labels: int, prefix: str = "val_") -> dict[str, float]:
    """`{prefix}tfidf_accuracy`, `_f1`, `_macro_f1` of char n-gram TF-IDF + logistic regression fitted on the
    training texts and scored on the evaluation texts (F1 as in `classification_metrics`)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    min_df = TFIDF_MIN_DF if len(train_texts) >= 2 * TFIDF_MIN_DF else 1  # a handful of texts keeps every n-gram
    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=TFIDF_NGRAMS, min_df=min_df, sublinear_tf=True)
    features = vectorizer.fit_transform(train_texts)  # (N, n-grams), sparse
    if len(set(train_labels)) < 2:  # logistic regression needs two classes; one class is the majority answer
        preds = [train_labels[0]] * len(eval_texts)
    else:
        clf = LogisticRegression(C=LOGREG_C, max_iter=2000).fit(features, list(train_labels))
        preds = clf.predict(vectorizer.transform(eval_texts)).tolist()
    metrics = classification_metrics(eval_labels, preds, num_labels, "")
    return {f"{prefix}tfidf_{k}": v for k, v in metrics.items()}


def text_baselines(train_texts: Sequence[str], train_labels: Sequence[int], eval_texts: Sequence[str],
                   eval_labels: Sequence[int], num_labels: int, prefix: str = "val_") -> dict[str, float]:
    """Both baselines, keys as in `majority_baseline` and `char_tfidf_baseline`."""
    return {**majority_baseline(train_labels, eval_labels, num_labels, prefix),
            **char_tfidf_baseline(train_texts, train_labels, eval_texts, eval_labels, num_labels, prefix)}
