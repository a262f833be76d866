"""Credit assignment and training: advantage estimators, trajectory graphs, trainers."""
