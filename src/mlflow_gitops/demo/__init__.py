"""Demo data and models: a synthetic NYC green taxi data set and duration regressors."""
