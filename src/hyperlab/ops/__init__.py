"""What the commands do: up/down/reset/status, provisioning, secrets, solve, doctor.
Imports every floor below; never grading/ or cli/."""
