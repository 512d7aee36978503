"""Off-policy evaluation: estimators with one interface (``ml.ope.estimators``), the estimator
selection rule (``ml.ope.select``), reward models (``ml.ope.reward_model``), the Open Bandit
Dataset experiment (``ml.ope.obd``) and OPE of slate policies on the platform's own logs
(``ml.ope.logged``)."""
