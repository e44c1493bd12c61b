"""What clients do: operation generators plus the checker each workload needs."""
