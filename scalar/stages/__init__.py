"""Training stages (Lightning modules): align (stage 1), and the RL / preference stages."""
