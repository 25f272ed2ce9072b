import streamlit as st

st.title("Delayed outputs")
