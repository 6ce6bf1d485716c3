"""Back into the EHR: write-back of our findings, CDS Hooks cards, SMART App Launch."""
