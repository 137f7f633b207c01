"""Training and evaluation of the bundled model; part of the repository, not of the installed
package (`python -m training.train_tiny`)."""
