"""Operators: fetch a window from MDCA into staging, flatten staged alerts, ship staged events to Devo, clean up."""
