"""Labs, machines, bookings and print jobs arrive with their own issues."""
