"""Marketing on top of interest tags: audiences (with lookalikes and consent), new-item
discovery budgets, and campaign windows with randomised holdouts."""
