"""The learned router: prompt features, small linear models, calibration, trained artifacts."""
