"""Windows answer files (Autounattend.xml, winnt.sif): template facts and structural checks."""
